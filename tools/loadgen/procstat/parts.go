package procstat

import "strings"

// Parts finds the processes of each line of the bill in a snapshot (its Classify is a
// Classifier):
//   - Roots: a process, by pid, and all its descendants: each instance of a service and the
//     gateway's nginx master (from the pid files make run writes: its workers are its
//     children), the load generator itself;
//   - PostgreSQL: a backend by the role in its process title (PGTitle); the server is the
//     postmaster that is the parent of such a backend, and its other children are the
//     server's own processes (PGOther: checkpointer, walwriter, autovacuum and parallel
//     workers...) or other roles' backends (PGClients). Another PostgreSQL server on the
//     machine is left out: a test's has no backend of these roles, and one in a container
//     (a cluster's or a compose file's, whose roles have the same names) is in a pid
//     namespace of its own;
//   - RabbitMQ: every beam.smp process of the user RabbitUID (the broker's service user),
//     not in a container, and its descendants (erl_child_setup and the programs it starts, such as inet_gethost);
//     a broker that a test starts as another user is left out.
type Parts struct {
	Roots     map[int]string
	PGRoles   map[string]string // role → group of its backends
	PGOther   string
	PGClients string
	RabbitUID int // -1: no broker to look for
	Rabbit    string

	servers map[ident]bool // every postmaster seen with a backend of PGRoles: true if not in a container
}

// Classify implements Classifier. It remembers the postmasters it found, so that the server
// is still counted in a sample where none of the roles happens to be connected.
func (p *Parts) Classify(s *Snapshot) map[int]string {
	groups := map[int]string{}
	tree := func(root int, group string) {
		for todo := []int{root}; len(todo) > 0; {
			pid := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			if groups[pid] == "" {
				groups[pid] = group
				todo = append(todo, s.Children(pid)...)
			}
		}
	}
	for pid, g := range p.Roots {
		if _, ok := s.Procs[pid]; ok {
			tree(pid, g)
		}
	}
	if p.servers == nil {
		p.servers = map[ident]bool{}
	}
	for pid, proc := range s.Procs {
		if proc.Comm != "postgres" || groups[pid] != "" {
			continue
		}
		if role, ok := PGTitle(s.Cmdline(pid)); ok && p.PGRoles[role] != "" {
			pm, ok := s.Procs[proc.PPID]
			if !ok || pm.Comm != "postgres" {
				continue
			}
			id := ident{pm.PID, pm.Start}
			ours, known := p.servers[id]
			if !known {
				st, err := ReadStatus(s.Root, pm.PID)
				if err != nil {
					continue // it has just ended; the next sample will tell
				}
				ours = !st.Namespaced
				p.servers[id] = ours
			}
			if ours {
				groups[pid] = p.PGRoles[role]
			}
		}
	}
	for pm, ours := range p.servers {
		if proc, ok := s.Procs[pm.pid]; !ours || !ok || proc.Start != pm.start {
			continue
		}
		if groups[pm.pid] == "" {
			groups[pm.pid] = p.PGOther
		}
		for _, c := range s.Children(pm.pid) {
			if groups[c] != "" {
				continue
			}
			if _, backend := PGTitle(s.Cmdline(c)); backend {
				groups[c] = p.PGClients
			} else {
				groups[c] = p.PGOther
			}
		}
	}
	if p.RabbitUID >= 0 {
		for pid, proc := range s.Procs {
			if proc.Comm == "beam.smp" && groups[pid] == "" {
				if st, err := ReadStatus(s.Root, pid); err == nil && st.UID == p.RabbitUID && !st.Namespaced {
					tree(pid, p.Rabbit)
				}
			}
		}
	}
	return groups
}

// PGTitle reads the title a PostgreSQL server process gives itself in its command line:
// "postgres: [cluster_name: ]<role> <database> <host> <activity>" for a client backend,
// whose host is "[local]" over the unix socket or "<address>(<port>)" over TCP, and
// "postgres: [cluster_name: ]checkpointer" and the like for the server's own processes. It
// returns the role of a client backend, and false for anything else (a backend that has not
// yet read its startup packet still shows the postmaster's command line). A cluster_name
// with a space in it would be taken for the start of the title.
func PGTitle(cmdline string) (role string, backend bool) {
	rest, ok := strings.CutPrefix(cmdline, "postgres: ")
	if !ok {
		return "", false
	}
	f := strings.Fields(rest)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:]
	}
	if len(f) >= 3 && (f[2] == "[local]" || strings.HasSuffix(f[2], ")")) {
		return f[0], true
	}
	return "", false
}
