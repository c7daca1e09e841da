package logging

import (
	"context"
	"strings"

	"github.com/rs/zerolog"
)

// GoRedisLogger adapts a zerolog logger to go-redis's logger (redis.SetLogger),
// whose lines — a failed dial for each pooled connection while Redis is
// down — would otherwise be plain text amid the JSON. They come out at
// debug level, tagged component=go-redis: asynq and the guard already
// report, once and at the right level, what a Redis outage does to the
// imports. go-redis's lines name addresses, never credentials or payloads.
type GoRedisLogger struct{ log zerolog.Logger }

// NewGoRedisLogger returns a go-redis logger writing to log.
func NewGoRedisLogger(log zerolog.Logger) *GoRedisLogger {
	return &GoRedisLogger{log: log.With().Str("component", "go-redis").Logger()}
}

// Printf implements go-redis's internal.Logging.
func (l *GoRedisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug().Msgf(strings.TrimSuffix(format, "\n"), v...)
}
