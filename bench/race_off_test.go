//go:build !race

package bench

// raceBuild tells the smoke test to run the hot-path benchmarks with
// -race too, so that `go test` finds them built already.
const raceBuild = false
