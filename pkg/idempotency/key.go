package idempotency

import (
	"context"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v5"

	"github.com/order-system/order-system/pkg/database"
	"github.com/order-system/order-system/pkg/httpx"
)

// Key is a request's Idempotency-Key as a handler passes it down to the code that writes the
// resource: the claim the middleware made for it, and how the request's answer is rendered
// from the value of type T its work ends with, so that the statement finishing the resource
// can store that answer. The zero Key stands for a request without the header; its methods
// then do nothing.
type Key[T any] struct {
	claim  *Claim
	render func(T) (httpx.Reply, error)
}

// KeyOf returns the key of c's request (the zero Key without the header), whose answer is
// render(v) once its work ends with v. The handler that sends the answer gives the function
// it renders it with.
func KeyOf[T any](c *echo.Context, render func(T) (httpx.Reply, error)) Key[T] {
	claim, _ := c.Request().Context().Value(claimKey{}).(*Claim)
	return Key[T]{claim: claim, render: render}
}

// Present reports whether the request has an Idempotency-Key.
func (k Key[T]) Present() bool { return k.claim != nil }

// Take takes the key with a statement that starts WITH TakeCTE (see Claim.Take). Without a
// key it returns nil at once, running nothing.
func (k Key[T]) Take(ctx context.Context, q sqlx.QueryerContext, run func(id uuid.UUID, key database.Params) error) error {
	if k.claim == nil {
		return nil
	}
	return k.claim.Take(ctx, q, run)
}

// Taken reports whether the key was taken for this request.
func (k Key[T]) Taken() bool { return k.claim != nil && k.claim.taken }

// ID is the id of the resource the request creates, derived from its key (Claim.ID).
func (k Key[T]) ID() uuid.UUID { return k.claim.ID() }

// Answer returns the parameters of StoreCTE that store the answer to v. ok is false when
// there is nothing to store with the resource: no key, the key not taken, or an answer that
// is not final (it says Retry-After), which the middleware then deals with.
func (k Key[T]) Answer(v T) (params database.Params, ok bool, err error) {
	r, ok, err := k.reply(v)
	if !ok || err != nil {
		return nil, false, err
	}
	return k.claim.storeParams(r), true, nil
}

// reply renders the answer to v when it is one to store with the resource (see Answer).
func (k Key[T]) reply(v T) (r httpx.Reply, ok bool, err error) {
	if !k.Taken() {
		return httpx.Reply{}, false, nil
	}
	if r, err = k.render(v); err != nil || r.RetryAfter != "" {
		return httpx.Reply{}, false, err
	}
	return r, true, nil
}

// MarkStored records that the statement storing the answer (StoreCTE) stored it, so that the
// middleware does not store it again.
func (k Key[T]) MarkStored() { k.claim.stored = true }

// InTx runs write in one transaction with the key's whole sequence: write takes the key with
// its first statement (Key.Take, which does nothing without a key) and writes the resource;
// the answer rendered from the value it returns is stored before the commit. When the
// transaction does not commit, neither the key nor the answer is the request's: the claim
// is told so, and the middleware answers as if the key had never been taken.
func InTx[T any](ctx context.Context, db *sqlx.DB, k Key[T], write func(tx *sqlx.Tx) (T, error)) (T, error) {
	var v T
	err := database.InTx(ctx, db, func(tx *sqlx.Tx) error {
		var err error
		if v, err = write(tx); err != nil {
			return err
		}
		r, ok, err := k.reply(v)
		if !ok || err != nil {
			return err
		}
		return k.claim.Store(ctx, tx, r)
	})
	if err != nil && k.claim != nil {
		k.claim.rolledBack()
	}
	return v, err
}
