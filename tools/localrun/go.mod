module github.com/order-system/order-system/tools/localrun

go 1.26.0
