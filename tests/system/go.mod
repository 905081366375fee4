module github.com/order-system/order-system/tests/system

go 1.26.0

require github.com/order-system/order-system/pkg v0.0.0

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/lib/pq v1.12.3 // indirect
	github.com/rabbitmq/amqp091-go v1.16.0 // indirect
)

replace github.com/order-system/order-system/pkg => ../../pkg
