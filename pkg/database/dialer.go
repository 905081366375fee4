package database

import (
	"context"
	"net"
	"time"
)

// deadlineDialer opens the pool's connections. Each read on an open connection waits at most
// read (if not 0) for the server: lib/pq does not interrupt a read when a query's context ends (it sends
// a cancel request on another connection, which a partition swallows too), so without this a
// query to a server that stopped answering waits until TCP gives up, many minutes later.
type deadlineDialer struct {
	dialer net.Dialer
	read   time.Duration
}

func (d deadlineDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d deadlineDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d deadlineDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: c, read: d.read}, nil
}

// deadlineConn sets a read deadline before every read, unless the driver set a deadline of
// its own (the connect timeout during the handshake), which holds until the driver clears it.
// The driver reads from one goroutine at a time.
type deadlineConn struct {
	net.Conn
	read  time.Duration
	fixed bool
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.fixed = !t.IsZero()
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if !c.fixed && c.read > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.read)); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}
