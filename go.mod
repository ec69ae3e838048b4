module github.com/evhub/evhub

go 1.26
