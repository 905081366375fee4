// Package system tests the real service binaries together, against the machine's
// PostgreSQL and RabbitMQ: money under concurrency, crashes and lost responses, and (the
// TestFault tests, run by make fault) broker and database outages.
package system
