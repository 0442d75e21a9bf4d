package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTimeArg reads a point in time as the API's since and until and the
// CLI's -since take it: "24h" (that long before now), "7d" (that many days
// before now) or an RFC 3339 time.
func ParseTimeArg(s string, now time.Time) (time.Time, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("want a duration such as 24h or 7d, or an RFC 3339 time, got %q", s)
	}
	return t, nil
}
