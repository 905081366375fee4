package database

import (
	"database/sql/driver"
	"errors"
	"io"
	"syscall"
)

// isDriverBadConn catches the low-level errors lib/pq returns when the server goes away in
// the middle of a conversation.
func isDriverBadConn(err error) bool {
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
