// Command ingressentry renders the Ingress objects of a cluster into nginx server blocks, so
// Debian's nginx can serve as the HTTP entry of a cluster that has no ingress controller. It
// follows the Ingress API's matching rules (host and single-label wildcard hosts, Exact,
// Prefix by path element, the longest match winning, Exact before Prefix), not any one
// controller's habits, and proxies to each backend Service's cluster IP.
//
//	kubectl get ingress,service -A -o json | ingressentry -listen 10.0.0.1:80 > servers.conf
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

func main() {
	listen := flag.String("listen", "80", "nginx listen address of every server")
	class := flag.String("class", "nginx", "serve the Ingresses of this class (and those without a class)")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, os.Stderr, *listen, *class); err != nil {
		fmt.Fprintln(os.Stderr, "ingressentry:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out, warn io.Writer, listen, class string) error {
	ingresses, services, err := decode(in)
	if err != nil {
		return err
	}
	t, warnings := newTable(ingresses, services, class)
	for _, w := range warnings {
		fmt.Fprintln(warn, "ingressentry:", w)
	}
	_, err = io.WriteString(out, render(t, listen))
	return err
}

// decode reads a kubectl List of Ingresses and Services.
func decode(in io.Reader) ([]networkingv1.Ingress, []corev1.Service, error) {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(in).Decode(&list); err != nil {
		return nil, nil, fmt.Errorf("read the object list: %w", err)
	}
	var ingresses []networkingv1.Ingress
	var services []corev1.Service
	for _, raw := range list.Items {
		var head struct{ Kind string }
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, nil, fmt.Errorf("read an object: %w", err)
		}
		switch head.Kind {
		case "Ingress":
			var o networkingv1.Ingress
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, nil, fmt.Errorf("read an Ingress: %w", err)
			}
			ingresses = append(ingresses, o)
		case "Service":
			var o corev1.Service
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, nil, fmt.Errorf("read a Service: %w", err)
			}
			services = append(services, o)
		}
	}
	return ingresses, services, nil
}
