//go:build !race

package assistants

// raceAllocSlack is 0 without the race detector; see hotpath_race_test.go.
const raceAllocSlack = 0
