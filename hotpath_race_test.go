//go:build race

package assistants

// raceAllocSlack is how many more allocations per request the race
// detector's instrumentation adds to TestTransportChainAllocations.
const raceAllocSlack = 2
