// Package system tests the real service binaries together, against the machine's
// PostgreSQL and RabbitMQ: money under concurrency, crashes and lost responses, (the
// TestFault tests, run by make fault) broker and database outages, and (TestChaos, run by
// make chaos) randomized faults checked against an oracle.
package system
