package deadletter

import (
	"context"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Filter selects dead letters. The zero Filter selects all of them.
type Filter struct {
	// Reason matches the WeChat code ("NO_AUTH") or the reason
	// ("permanent"), ignoring case.
	Reason string
	// CardID matches the card exactly.
	CardID string
	// Since keeps records whose last failure is at or after it.
	Since time.Time
}

// Match reports whether r passes the filter.
func (f Filter) Match(r Record) bool {
	if f.Reason != "" && !strings.EqualFold(f.Reason, r.WeChatCode) && !strings.EqualFold(f.Reason, string(r.Reason)) {
		return false
	}
	if f.CardID != "" && f.CardID != r.CardID {
		return false
	}
	return f.Since.IsZero() || !r.LastFailedAt.Before(f.Since)
}

// pageSize is how many records one round trip to Redis brings back: big
// enough that 12,000 records take a few dozen round trips, small enough
// that no reply holds the whole store.
const pageSize = 500

// List returns the records that pass f, oldest last failure first, a page
// at a time. Records removed or added while it runs may or may not appear;
// a record present throughout appears exactly once, as long as its last
// failure time does not change meanwhile.
func (s *Store) List(ctx context.Context, f Filter) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		var cur cursor
		if !f.Since.IsZero() {
			cur.minScore = f.Since.UnixMilli()
		}
		for {
			recs, read, next, err := s.page(ctx, cur, pageSize)
			if err != nil {
				yield(Record{}, err)
				return
			}
			for _, r := range recs {
				if f.Match(r) && !yield(r, nil) {
					return
				}
			}
			if read < pageSize {
				return
			}
			cur = next
		}
	}
}

// cursor is where a page starts: after (score, member) once a page has
// been read, else at the first score not below minScore.
type cursor struct {
	minScore int64
	score    int64
	member   string
}

// pageScript returns up to ARGV[4] records after a cursor, with their
// fields, in one atomic step. It finds its place by the rank of the
// previous page's last member, so records removed meanwhile (imports that
// succeeded during a replay) shift nothing; when that member itself has
// gone or moved, it counts its way back to the cursor's (score, member)
// position, which Redis orders by score then bytes.
//
// KEYS[1] index; ARGV: min score, cursor score, cursor member ("" for the
// first page), count, record key prefix.
var pageScript = redis.NewScript(`
local start
if ARGV[3] == "" then
	start = redis.call("ZCOUNT", KEYS[1], "-inf", "(" .. ARGV[1])
else
	local rank = redis.call("ZRANK", KEYS[1], ARGV[3])
	local score = redis.call("ZSCORE", KEYS[1], ARGV[3])
	if rank and tonumber(score) == tonumber(ARGV[2]) then
		start = rank + 1
	else
		start = redis.call("ZCOUNT", KEYS[1], "-inf", "(" .. ARGV[2])
		for _, m in ipairs(redis.call("ZRANGEBYSCORE", KEYS[1], ARGV[2], ARGV[2])) do
			if m > ARGV[3] then break end
			start = start + 1
		end
	end
end
local out = {}
local members = redis.call("ZRANGE", KEYS[1], start, start + tonumber(ARGV[4]) - 1, "WITHSCORES")
for i = 1, #members, 2 do
	out[#out + 1] = members[i]
	out[#out + 1] = members[i + 1]
	out[#out + 1] = redis.call("HGETALL", ARGV[5] .. members[i])
end
return out
`)

// page returns the records of up to n index entries after cur, how many
// entries it read, and the cursor after them.
func (s *Store) page(ctx context.Context, cur cursor, n int) ([]Record, int, cursor, error) {
	res, err := pageScript.Run(ctx, s.rdb, []string{s.index}, cur.minScore, cur.score, cur.member, n, s.rec).Slice()
	if err != nil {
		return nil, 0, cur, fmt.Errorf("dead letters: list: %w", err)
	}
	recs := make([]Record, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		member, _ := res[i].(string)
		score, _ := strconv.ParseFloat(fmt.Sprint(res[i+1]), 64)
		cur = cursor{minScore: cur.minScore, score: int64(score), member: member}
		flat, _ := res[i+2].([]any)
		if len(flat) == 0 {
			// An index entry without its record: Remove deletes both in
			// one transaction, so only a hand-edited store has one.
			continue
		}
		fields := make(map[string]string, len(flat)/2)
		for j := 0; j+1 < len(flat); j += 2 {
			k, _ := flat[j].(string)
			v, _ := flat[j+1].(string)
			fields[k] = v
		}
		recs = append(recs, decodeRecord(fields))
	}
	return recs, len(res) / 3, cur, nil
}
