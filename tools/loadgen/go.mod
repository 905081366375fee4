module github.com/order-system/order-system/tools/loadgen

go 1.26.0

require github.com/google/go-cmp v0.7.0
