#!/usr/bin/env bash
# make cluster-test, against the cluster of make cluster-up:
#   1. the Postman collection through the HTTP entry, with --delay-request 2000 and without;
#   2. helm test (each Service answers /readyz from a Ready pod);
#   3. a pod's connection to an address beyond the machine is dropped by the egress rule;
#   4. the Gateway API HTTPRoute: refused while the cluster lacks the Gateway API, then the
#      CRDs of sigs.k8s.io/gateway-api installed, the chart upgraded with httpRoute.enabled,
#      the route stored by the API server, then switched off;
#   5. helm upgrade to a newly built image tag while tools/loadgen runs: 0 failed requests,
#      its invariant check holds, every pod runs the new tag;
#   6. helm rollback across a migration: order upgraded to a build with one more migration
#      (an expand step), then rolled back while tools/loadgen runs: 0 failed requests, its
#      invariant check holds, the older pods run on the newer schema, which stays;
#   7. one pod of each service deleted while tools/loadgen runs: its invariant check holds
#      (no lost or duplicated event, no double debit; requests cut by the deletion are counted);
#   8. the broker: every quorum queue has a member on each node of the RabbitMQ cluster; the
#      node that leads most of them deleted while tools/loadgen runs: no request fails but
#      with 503, its invariant check holds, the node rejoins and every queue is whole again;
#   9. sign-in: the chart upgraded with global.auth and its development provider, and the
#      sign-in collection through the entry with the tokens of two new users (all but its
#      folders for billing's internal API, which the entry does not route, and for the
#      gateway's rate limit, which this entry does not apply).
set -euo pipefail
. "$(dirname "$0")/cluster-env.sh"
cd "$REPO"
[ -e "$STATE/up" ] || { echo "no cluster: make cluster-up first" >&2; exit 1; }
ENTRY=http://$NODE_IP:$ENTRY_PORT
t0=$SECONDS
results=$STATE/results
mkdir -p "$results"
bash scripts/install-tools.sh newman
# The upgrades below render the chart as cluster-up installed it: with each subchart's copy of
# the library packaged (the services' checksum/config would change, and their pods roll, without).
bash deploy/helm/dependencies.sh

step "Newman through the entry, with --delay-request 2000 and without"
for delay in 2000 0; do
	t1=$SECONDS
	args=()
	[ "$delay" = 0 ] || args=(--delay-request "$delay")
	HTTP_PROXY=$ENTRY http_proxy=$ENTRY NO_PROXY= no_proxy= newman run postman/order-system.postman_collection.json \
		-e postman/k8s.postman_environment.json "${args[@]}" --reporters cli >"$results/newman-$delay.log" 2>&1 ||
		{ tail -60 "$results/newman-$delay.log"; die "newman (delay $delay)"; }
	counts=$(grep -E '│ +assertions' "$results/newman-$delay.log" | tr -s ' │' ' ')
	[ -n "$counts" ] || { tail -20 "$results/newman-$delay.log"; die "newman (delay $delay) ran no assertion"; }
	log "newman, delay $delay ms:$counts (executed, failed) in $((SECONDS - t1)) s"
done

step "helm test"
helm test "$RELEASE" --timeout 3m >"$results/helm-test.log" || { cat "$results/helm-test.log"; die "helm test"; }
log "helm test: $(grep -c 'Phase: *Succeeded' "$results/helm-test.log") test pods succeeded"

step "no pod traffic leaves the machine"
# A connection from a pod to an address beyond the machine (TEST-NET-3, never a real host) must
# be dropped by the bridge's egress rule: its packet counter grows and the connection fails.
drops() { iptables -L FORWARD -v -x -n | awk -v c="$COMMENT" '$3 == "DROP" && index($0, c) {print $1}'; }
kubectl exec "$RELEASE-postgresql-0" -- true || die "kubectl exec does not work"
before=$(drops)
if kubectl exec "$RELEASE-postgresql-0" -- nc -w 3 203.0.113.1 80 </dev/null >/dev/null 2>&1; then
	die "a pod reached 203.0.113.1"
fi
after=$(drops)
[ "${after:-0}" -gt "${before:-0}" ] || die "the egress rule dropped nothing ($before, then $after packets)"
log "a pod's connection beyond the machine was dropped by the bridge's egress rule ($((after - before)) packets)"

step "the host's ports, from a pod and anonymously"
# The kubelet listens on the node's address: a pod must not reach it (only the cluster's DNS
# and API server are open to the pods), and an anonymous request from the host is refused.
if kubectl exec "$RELEASE-postgresql-0" -- nc -w 3 "$NODE_IP" 20250 </dev/null >/dev/null 2>&1; then
	die "a pod reached the kubelet's port on the host"
fi
kubectl exec "$RELEASE-postgresql-0" -- nc -w 3 "$NODE_IP" "$API_PORT" </dev/null >/dev/null 2>&1 ||
	die "a pod could not reach the API server on the host"
code=$(curl -sk -o /dev/null -w '%{http_code}' "https://$NODE_IP:20250/pods")
[ "$code" = 401 ] || die "the kubelet answered an anonymous request for its pods with $code, want 401"
log "a pod reaches the API server's port and not the kubelet's; the kubelet refuses anonymous requests (401); exec and logs work through the API server"

step "Gateway API HTTPRoute against the real API server"
# The chart renders its HTTPRoute only where the API server serves the Gateway API, which helm
# learns from the cluster itself (discovery, asked afresh on every install and upgrade): before
# the CRDs, asking for the route is refused with the chart's message and changes nothing.
if ! kubectl get crd httproutes.gateway.networking.k8s.io >/dev/null 2>&1; then
	refused=$(helm upgrade "$RELEASE" "$CHART" -f "$STATE/values.yaml" --set httpRoute.enabled=true 2>&1) &&
		die "helm upgrade with httpRoute.enabled succeeded without the Gateway API CRDs"
	grep -q 'the cluster has no Gateway API' <<<"$refused" || die "helm upgrade without the Gateway API CRDs: $refused"
	log "without the Gateway API CRDs httpRoute.enabled is refused: the cluster has no Gateway API"
fi
crds=$(bash deploy/kube/gateway-api-crds.sh)
kubectl apply --server-side -f "$crds" >/dev/null
kubectl wait --for condition=Established crd/httproutes.gateway.networking.k8s.io --timeout 60s >/dev/null
helm upgrade "$RELEASE" "$CHART" -f "$STATE/values.yaml" --set httpRoute.enabled=true --wait --timeout 3m >/dev/null
rules=$(kubectl get httproute "$RELEASE" -o jsonpath='{range .spec.rules[*]}{.matches[0].path.value}={.backendRefs[0].name} {end}')
log "HTTPRoute stored: $rules"
for want in /users=$RELEASE-user /billing=$RELEASE-billing /orders=$RELEASE-order /notifications=$RELEASE-notification /=$RELEASE-index; do
	grep -qw -- "$want" <<<"$rules" || die "the HTTPRoute lacks $want"
done
helm upgrade "$RELEASE" "$CHART" -f "$STATE/values.yaml" --wait --timeout 3m >/dev/null
kubectl get httproute "$RELEASE" >/dev/null 2>&1 && die "the HTTPRoute is still there with httpRoute.enabled=false"
log "HTTPRoute removed again with httpRoute.enabled=false"

# load <name> <seconds>: tools/loadgen through the entry in the background (its pid in
# $load_pid); its report in $results/<name>.json, its output in $results/<name>.log.
load() {
	mkdir -p "$results/pids"
	HTTP_PROXY=$ENTRY "$BIN/loadgen" -base-url http://arch.homework -clients 8 -users 40 -duration "$2s" -drain 60s \
		-pid-dir "$results/pids" -out "$results/$1.json" >"$results/$1.log" 2>&1 &
	load_pid=$!
}
# placing: waits until loadgen has set up its users and places orders.
placing() {
	wait_for 60 "loadgen $1 placing orders" grep -q 'orders' "$results/$1.log" || die "loadgen $1 never started placing orders"
}
summary() { # <name>: the figures of a loadgen report
	jq -r '"\(.orders) requests, \(.errors) failed (\(.statuses | to_entries | map("\(.key): \(.value)") | join(", "))), invariant violations \(.violations | [.double_debits, .missing_debits, .unexpected_debits, .balance_mismatches, .lost_notifications, .duplicated_notifications, .wrong_notification_type, .unexpected_notifications, (.unfinished_orders // 0)] | add)"' "$results/$1.json"
}

step "helm upgrade to a new image tag under load"
NEW_TAG=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CHART/Chart.yaml")-rollout.$(date +%s)
bash deploy/kube/images.sh services "$NEW_TAG"
for svc in user billing order notification; do ctr_ images import --no-unpack "$IMAGES/$svc-$NEW_TAG.oci.tar" >/dev/null; done
load rollout 45
placing rollout
t1=$SECONDS
helm upgrade "$RELEASE" "$CHART" -f "$STATE/values.yaml" --set global.image.tag="$NEW_TAG" --wait --timeout 5m >/dev/null
rollout=$((SECONDS - t1))
log "rollout to $NEW_TAG done in $rollout s; the load goes on"
wait "$load_pid" || { tail -30 "$results/rollout.log"; die "loadgen during the rollout: invariant check"; }
log "rollout under load: $(summary rollout)"
[ "$(jq .errors "$results/rollout.json")" = 0 ] || die "requests failed during the rollout"
# helm returns once the new pods are Ready; the old ones may still be draining (preStop and
# SHUTDOWN_TIMEOUT), so they are given their grace period to go.
old_pods() { kubectl get pods -l "app.kubernetes.io/instance=$RELEASE" -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | grep order-system- | grep -vc ":$NEW_TAG$" || true; }
t1=$SECONDS
none_old() { [ "$(old_pods)" = 0 ]; }
wait_for 60 "every pod on $NEW_TAG" none_old || die "$(old_pods) pods still run an old image 60 s after the upgrade"
log "every pod runs $NEW_TAG ($((SECONDS - t1)) s after helm returned)"
for svc in user billing order notification devidp; do rm -f "$IMAGES/$svc-$NEW_TAG.oci.tar"; done

step "helm rollback across a migration, under load"
# A later release of order with one more migration (an expand step: a new column), then a
# rollback to the release before while orders are placed: the older code's migrations find
# a schema newer than theirs and leave it, and the older code runs on it.
schema() { kubectl exec "$RELEASE-postgresql-0" -c postgresql -- psql -U postgres -d order_system -Atc "SELECT version || CASE WHEN dirty THEN ' dirty' ELSE '' END FROM orders.schema_migrations"; }
revision=$(helm history "$RELEASE" -o json | jq '.[-1].revision')
NEXT_TAG=$NEW_TAG-next
next=$(bash deploy/kube/images.sh next order "$NEXT_TAG" deploy/kube/config/next-release.up.sql deploy/kube/config/next-release.down.sql)
ctr_ images import --no-unpack "$IMAGES/order-$NEXT_TAG.oci.tar" >/dev/null
rm -f "$IMAGES/order-$NEXT_TAG.oci.tar"
before=$(schema)
helm upgrade "$RELEASE" "$CHART" -f "$STATE/values.yaml" --set global.image.tag="$NEW_TAG",order.image.tag="$NEXT_TAG" --wait --timeout 5m >/dev/null
[ "$(schema)" = "$((10#$next))" ] || die "order's schema is at $(schema) after the upgrade to $NEXT_TAG, want $((10#$next))"
log "upgraded order to $NEXT_TAG: its schema went from version $before to $(schema)"
load rollback 60
placing rollback
t1=$SECONDS
helm rollback "$RELEASE" "$revision" --wait --timeout 5m >/dev/null
log "rolled back to revision $revision in $((SECONDS - t1)) s"
wait "$load_pid" || { tail -30 "$results/rollback.log"; die "loadgen during the rollback: invariant check"; }
log "rollback under load: $(summary rollback)"
[ "$(jq .errors "$results/rollback.json")" = 0 ] || die "requests failed during the rollback"
# helm returns once the rolled-back pods are Ready; the later release's drain meanwhile.
order_images() { kubectl get pods -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/name=order" -o jsonpath='{range .items[*]}{.metadata.name} {.spec.containers[0].image}{"\n"}{end}'; }
none_later() { ! grep -q ":$NEXT_TAG$" <<<"$(order_images)"; }
wait_for 60 "order's pods off $NEXT_TAG" none_later || die "order's pods still run $NEXT_TAG 60 s after the rollback: $(order_images)"
[ "$(schema)" = "$((10#$next))" ] || die "order's schema is at $(schema) after the rollback, want $((10#$next)) kept"
while read -r pod image; do
	[[ $image == *":$NEW_TAG" ]] || die "$pod runs $image after the rollback, want $NEW_TAG"
	grep -q 'left as it is' <<<"$(kubectl logs "$pod" -c migrate)" ||
		die "$pod's migrations did not report the later schema: $(kubectl logs "$pod" -c migrate)"
done <<<"$(order_images)"
log "order runs $NEW_TAG again on schema version $(schema), which its migrations left as they found it"

step "one pod of each service deleted under load"
load podkill 40
placing podkill
sleep 5
victims=()
for svc in user billing order notification; do
	victims+=("$(kubectl get pods -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/name=$svc" -o jsonpath='{.items[0].metadata.name}')")
done
kubectl delete pod "${victims[@]}" --wait=false >/dev/null
log "deleted ${victims[*]}"
wait "$load_pid" || { tail -30 "$results/podkill.log"; die "loadgen during the pod deletions: invariant check"; }
log "pod deletions under load: $(summary podkill)"
kubectl wait --for=condition=Available deployment -l "app.kubernetes.io/instance=$RELEASE" --timeout 3m >/dev/null
for svc in user billing order notification; do
	n=$(kubectl get deployment "$RELEASE-$svc" -o jsonpath='{.status.readyReplicas}')
	[ "$n" = 2 ] || die "$svc has $n ready replicas after the deletions, want 2"
done
log "every service back to 2 ready replicas"

step "one RabbitMQ node deleted under load"
brokers=$(kubectl get statefulset "$RELEASE-rabbitmq" -o jsonpath='{.spec.replicas}')
vhost=$(helm get values "$RELEASE" --all -o json | jq -r '.global.amqp.vhost // "" | if . == "" then "/" else . end')
# queues <pod>: the quorum queues of the services' vhost as JSON: name, leader, members, online.
queues() {
	kubectl exec "$1" -- rabbitmqctl -q list_queues -p "$vhost" name type leader members online --formatter json |
		jq -c '[.[] | select(.type == "quorum")]'
}
# short <json>: the queues without a member on each node, or with a member offline.
short() {
	jq -r --argjson n "$brokers" '.[] | select((.members | length) != $n or (.online | length) != $n) |
		"\(.name): \(.members | length) members, \(.online | length) online"' <<<"$1"
}
whole() { # <json>: fails unless there are queues and none is short
	[ -n "$(jq '.[]' <<<"$1")" ] || die "no quorum queue in vhost $vhost"
	[ -z "$(short "$1")" ] || die "quorum queues without a member on each of the $brokers nodes: $(short "$1" | tr '\n' ' ')"
}
before=$(queues "$RELEASE-rabbitmq-0")
whole "$before"
running=$(kubectl exec "$RELEASE-rabbitmq-0" -- rabbitmqctl -q cluster_status --formatter json | jq '.running_nodes | length')
[ "$running" = "$brokers" ] || die "the broker cluster runs $running nodes, want $brokers"
log "$brokers broker nodes in one cluster; $(jq length <<<"$before") quorum queues in vhost $vhost, each with $brokers members"
# The node that leads most queues: its loss moves the most leaders.
leader=$(jq -r '[.[].leader] | group_by(.) | max_by(length) | .[0]' <<<"$before")
victim=${leader#rabbit@}
victim=${victim%%.*}
load brokerkill 40
placing brokerkill
sleep 5
t1=$SECONDS
kubectl delete pod "$victim" --wait=false >/dev/null
log "deleted $victim (leader of $(jq --arg l "$leader" '[.[] | select(.leader == $l)] | length' <<<"$before") queues)"
wait "$load_pid" || { tail -30 "$results/brokerkill.log"; die "loadgen during the broker node's deletion: invariant check"; }
log "broker node deleted under load: $(summary brokerkill)"
failed=$(jq '.errors - (.statuses["503"] // 0)' "$results/brokerkill.json")
[ "$failed" = 0 ] || die "$failed requests failed otherwise than with 503 while a broker node was down"
# The stand-in's RabbitMQ (Debian's 3.10 on Erlang 25) was seen, once in several runs, to
# hang at boot in Erlang's global name registry when it came back seconds after its deletion
# ("Global hang workaround" in its log), for minutes, until its peers restarted. A node not
# ready after 3 minutes is deleted once more, and the test says so.
if ! kubectl rollout status statefulset "$RELEASE-rabbitmq" --timeout 3m >/dev/null; then
	log "$victim not ready $((SECONDS - t1)) s after its deletion (global hang in its log: $(kubectl logs "$victim" 2>/dev/null | grep -c 'Global hang workaround')); deleting it once more"
	kubectl delete pod "$victim" --wait=false >/dev/null
	kubectl rollout status statefulset "$RELEASE-rabbitmq" --timeout 5m >/dev/null || die "$victim not ready again after a second deletion"
fi
log "$victim ready again $((SECONDS - t1)) s after its deletion"
for _ in $(seq 60); do
	after=$(queues "$victim")
	[ -n "$(short "$after")" ] || break
	sleep 2
done
whole "$after"
log "every quorum queue whole again: $brokers members, all online; leaders now on $(jq -r '[.[].leader | ltrimstr("rabbit@") | split(".")[0]] | unique | join(", ")' <<<"$after")"

step "sign-in: global.auth with the development provider, the sign-in collection through the entry"
t1=$SECONDS
helm upgrade "$RELEASE" "$CHART" -f "$STATE/values.yaml" --set global.auth.enabled=true,global.auth.devProvider=true --wait --timeout 5m >/dev/null
log "upgraded with sign-in on in $((SECONDS - t1)) s"
bash deploy/kube/entry.sh # reads the Ingress objects again: the provider's host is new
go build -o bin/devidp ./tools/devidp
# The provider's issuer is its in-cluster URL; from here it is reached through the entry,
# which routes its host, so that the tokens name the issuer the services expect.
through_entry() { HTTP_PROXY=$ENTRY http_proxy=$ENTRY NO_PROXY= no_proxy= "$@"; }
issuer=http://$RELEASE-devidp:8070
ann=$(through_entry bin/devidp token -issuer "$issuer")
bob=$(through_entry bin/devidp token -issuer "$issuer")
other=$(through_entry bin/devidp token -issuer "$issuer" -client other-app)
folders=()
for f in "Ann, signed in, runs the seed scenario" "Bob, another user, is refused on Ann's resources" \
	"Without a token every route is 401" "With a tampered token every route is 401" \
	"With a token for another audience every route is 401" "Nothing moved" "The index and the API description need no token"; do
	folders+=(--folder "$f")
done
through_entry newman run postman/order-system-auth.postman_collection.json -e postman/k8s.postman_environment.json \
	--env-var "tokenAnn=$ann" --env-var "tokenBob=$bob" --env-var "tokenOtherAudience=$other" "${folders[@]}" \
	--reporters cli >"$results/newman-auth.log" 2>&1 || { tail -60 "$results/newman-auth.log"; die "newman, sign-in collection"; }
log "newman, sign-in collection:$(grep -E '│ +assertions' "$results/newman-auth.log" | tr -s ' │' ' ') (executed, failed)"
log "cluster-test passed in $((SECONDS - t0)) s"
