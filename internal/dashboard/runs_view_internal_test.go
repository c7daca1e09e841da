package dashboard

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/results"
)

func TestThousands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {12345, "12,345"}, {1234567, "1,234,567"}, {-1234, "-1,234"}}
	for _, tt := range tests {
		require.Equal(t, tt.want, thousands(tt.n), "%d", tt.n)
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{42 * time.Second, "42s"},
		{3*time.Minute + 7*time.Second, "3m07s"},
		{5*time.Hour + 4*time.Minute, "5h04m"},
		{3*24*time.Hour + 7*time.Hour, "3d07h"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, duration(tt.d), "%s", tt.d)
	}
}

// TestRunOf: the progress bar's parts and the state a run is shown in.
func TestRunOf(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	p := &runsPage{now: func() time.Time { return start.Add(90 * time.Minute) }}
	tests := []struct {
		name        string
		run         results.Run
		wantState   string
		wantPercent int
		wantBar     [3]string
		wantTook    string
	}{
		{
			name:      "being handed over",
			run:       results.Run{Enqueued: 200, Imported: 50, AlreadyMember: 10, Dead: 4, StartedAt: start},
			wantState: "enqueueing", wantPercent: 32, wantBar: [3]string{"25.00%", "5.00%", "2.00%"}, wantTook: "1h30m",
		},
		{
			name:      "closed, some waiting",
			run:       results.Run{Enqueued: 3, Imported: 1, Closed: true, StartedAt: start},
			wantState: "finishing", wantPercent: 33, wantBar: [3]string{"33.33%", "0.00%", "0.00%"}, wantTook: "1h30m",
		},
		{
			name:      "settled",
			run:       results.Run{Enqueued: 4, Imported: 2, AlreadyMember: 1, Dead: 1, Closed: true, StartedAt: start, SettledAt: start.Add(4*time.Minute + 12*time.Second)},
			wantState: "settled", wantPercent: 100, wantBar: [3]string{"50.00%", "25.00%", "25.00%"}, wantTook: "4m12s",
		},
		{
			// Counts land from several processes: an outcome may be
			// counted before the enqueue behind it.
			name:      "outcomes counted before their enqueue",
			run:       results.Run{Enqueued: 1, Imported: 2, StartedAt: start},
			wantState: "enqueueing", wantPercent: 100, wantBar: [3]string{"100.00%", "0.00%", "0.00%"}, wantTook: "1h30m",
		},
		{name: "empty", run: results.Run{StartedAt: start}, wantState: "enqueueing", wantBar: [3]string{"0%", "0%", "0%"}, wantTook: "1h30m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.runOf(tt.run)
			require.Equal(t, tt.wantState, got.State)
			require.Equal(t, tt.wantPercent, got.Percent)
			require.Equal(t, tt.wantBar, [3]string{got.Bar.Imported, got.Bar.AlreadyMember, got.Bar.Dead})
			require.Equal(t, tt.wantTook, got.Took)
		})
	}
}
