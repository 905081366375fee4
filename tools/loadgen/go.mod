module github.com/order-system/order-system/tools/loadgen

go 1.26.0
