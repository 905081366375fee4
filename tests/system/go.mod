module github.com/order-system/order-system/tests/system

go 1.26.0

require (
	github.com/google/uuid v1.6.0
	github.com/lib/pq v1.12.3
	github.com/order-system/order-system/pkg v0.0.0
	github.com/rabbitmq/amqp091-go v1.16.0
)

replace github.com/order-system/order-system/pkg => ../../pkg
