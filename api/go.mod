module github.com/order-system/order-system/api

go 1.26.0

require (
	github.com/google/uuid v1.6.0
	github.com/order-system/order-system/pkg v0.0.0
)

replace github.com/order-system/order-system/pkg => ../pkg
