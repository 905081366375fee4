package database

import (
	"context"
	"database/sql/driver"
	"errors"
)

// ConnectError is the failure to open a connection, whatever its cause: every host of a
// multi-host URL down, none of them writable while a standby is being promoted, a login
// refused. The database cannot serve the request, so IsUnavailable holds: the caller answers
// 503 and the log says why.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return "connect to database: " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// connector marks the errors of lib/pq's connector as ConnectError. Most already read as
// unavailable (a refused or reset connection); lib/pq's "could not connect to any of the
// hosts" when no host is writable (target_session_attrs=read-write during a failover) does
// not.
type connector struct{ driver.Connector }

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, &ConnectError{Err: err}
	}
	return conn, nil
}

func isConnectError(err error) bool {
	var ce *ConnectError
	return errors.As(err, &ce)
}
