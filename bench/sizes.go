package bench

import "time"

// Sizes sets how much each scenario does. FullSizes are the sizes of the
// issue; QuickSizes finish in about a minute; the smoke test uses tiny
// ones.
type Sizes struct {
	// Name is printed with the report ("full", "quick").
	Name string

	// OverheadDeclarations are sent by the bare loop and by the worker
	// each, OverheadConcurrency at once.
	OverheadDeclarations int
	OverheadConcurrency  int
	// OverheadRounds is how often each of the scenario's runs is
	// repeated, alternating with the others. The CPU time of a run
	// varies by about ±15 % on a shared machine; more, shorter rounds
	// steady the median of the ratios better than fewer, longer ones.
	OverheadRounds int

	// LatencyDeclarations go through the worker with LatencyConcurrency in
	// flight, against a simulator that takes CallLatency for every Toll
	// call and ValidationDelay to validate.
	LatencyDeclarations int
	LatencyConcurrency  int
	CallLatency         time.Duration
	ValidationDelay     time.Duration

	// TokenDeclarationsPerKind of each of the four kinds are published at
	// once.
	TokenDeclarationsPerKind int

	// Documents files of DocumentBytes each are uploaded at once.
	Documents     int
	DocumentBytes int64

	// ScaleOutWorkers are the worker counts compared, the first being the
	// baseline; each worker has ScaleOutConcurrency in flight and gets
	// ScaleOutWaves times that many declarations, against a simulator
	// with ScaleOutLatency per call, so that each worker is bound by its
	// in-flight limit, not by the machine.
	ScaleOutWorkers     []int
	ScaleOutConcurrency int
	ScaleOutWaves       int
	ScaleOutLatency     time.Duration

	// HotPathBenchtime is go test's -benchtime for the hot-path benchmarks.
	HotPathBenchtime string

	// StorageDeclarations go through the worker before the storage
	// scenario reads what the streams keep. The server compresses a
	// block of a stream once it is full (4 MB for the state bucket, about
	// 2000 declarations), so a run too short to fill several shows
	// mostly uncompressed bytes on disk.
	StorageDeclarations int
	// StorageSettle is waited after the run before the memory kept is
	// measured: a little more than the 10 s for which a NATS file store
	// keeps the cache of a block it wrote to.
	StorageSettle time.Duration
}

// FullSizes are the sizes the issue names, but for the overhead
// scenario, which runs 11 shorter rounds (2500 declarations) rather than
// 5 of 5000 for a steadier median. The run takes about four minutes on
// two cores.
func FullSizes() Sizes {
	return Sizes{
		Name:                     "full",
		OverheadDeclarations:     2500,
		OverheadConcurrency:      64,
		OverheadRounds:           11,
		LatencyDeclarations:      5000,
		LatencyConcurrency:       256,
		CallLatency:              50 * time.Millisecond,
		ValidationDelay:          2 * time.Second,
		TokenDeclarationsPerKind: 25,
		Documents:                20,
		DocumentBytes:            10_000_000,
		ScaleOutWorkers:          []int{1, 2, 4},
		ScaleOutConcurrency:      16,
		ScaleOutWaves:            8,
		ScaleOutLatency:          50 * time.Millisecond,
		HotPathBenchtime:         "300ms",
		StorageDeclarations:      20000,
		StorageSettle:            12 * time.Second,
	}
}

// QuickSizes keep the shape of every scenario at a fraction of the work;
// the figures are noisier.
func QuickSizes() Sizes {
	s := FullSizes()
	s.Name = "quick"
	s.OverheadDeclarations = 1000
	s.OverheadRounds = 5
	s.LatencyDeclarations = 1000
	s.TokenDeclarationsPerKind = 10
	s.Documents = 20
	s.ScaleOutWaves = 3
	s.HotPathBenchtime = "100ms"
	s.StorageDeclarations = 5000
	return s
}
