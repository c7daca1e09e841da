package logging

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// The loggers of the libraries, asynq's and go-redis's, adapted to zerolog
// so that their lines join the JSON log, each tagged with its component.

// AsynqLogger adapts a zerolog logger to asynq.Logger, so asynq's own lines
// (lease recovery, shutdown, Redis errors) come out as the same JSON, tagged
// component=asynq. asynq's lines carry task ids, never payloads.
type AsynqLogger struct{ log zerolog.Logger }

// NewAsynqLogger returns an asynq.Logger writing to log.
func NewAsynqLogger(log zerolog.Logger) *AsynqLogger {
	return &AsynqLogger{log: log.With().Str("component", "asynq").Logger()}
}

// Debug implements asynq.Logger.
func (l *AsynqLogger) Debug(args ...any) { l.log.Debug().Msg(fmt.Sprint(args...)) }

// Info implements asynq.Logger.
func (l *AsynqLogger) Info(args ...any) { l.log.Info().Msg(fmt.Sprint(args...)) }

// Warn implements asynq.Logger. asynq warns "Retry exhausted" for every
// archived task, also for those the handler refused at once; the handler
// has already logged why, so that line is demoted to debug.
func (l *AsynqLogger) Warn(args ...any) {
	msg := fmt.Sprint(args...)
	if strings.HasPrefix(msg, "Retry exhausted for task") {
		l.log.Debug().Msg(msg)
		return
	}
	l.log.Warn().Msg(msg)
}

// Error implements asynq.Logger.
func (l *AsynqLogger) Error(args ...any) { l.log.Error().Msg(fmt.Sprint(args...)) }

// Fatal implements asynq.Logger. asynq calls it only for unrecoverable
// setup errors; we log and let asynq exit as it expects.
func (l *AsynqLogger) Fatal(args ...any) { l.log.Fatal().Msg(fmt.Sprint(args...)) }

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
