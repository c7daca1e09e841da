package faultsuite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/guard"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// quietWindow is how long, once the circuit is open, no retry may be spent
// and nothing archived while WeChat's answers do not verify.
const quietWindow = 30 * time.Second

// TestAnswersStopVerifyingMidRun: mid-run, every answer WeChat gives stops
// verifying (a key swapped under the workers, a proxy rewriting answers).
// The circuit opens within a few answers, and in the next 30 s no task
// spends a retry and none is archived: the queue waits for an operator
// instead of draining into the dead letters.
func TestAnswersStopVerifyingMidRun(t *testing.T) {
	s := newScenario(t, "unverified", nil)
	s.enqueueAll()
	s.startWorker()
	s.startWorker()
	s.waitImported(members / 3)
	s.srv.ForgeNext(1 << 30)
	s.srv.ForgeNextList(1 << 30)
	broke := time.Now()

	rdb := s.redis.Opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	var opened time.Time
	for deadline := time.Now().Add(time.Minute); ; {
		st, err := guard.ReadState(t.Context(), rdb, s.queue)
		require.NoError(t, err)
		if st.Open {
			opened = time.Now()
			require.Contains(t, st.Hint, "WECHATPAY_PUBLIC_KEY_FILE")
			break
		}
		require.True(t, time.Now().Before(deadline), "circuit not open a minute after answers stopped verifying")
		time.Sleep(20 * time.Millisecond)
	}
	// Attempts in flight when it opened end first.
	time.Sleep(2 * time.Second)
	before, archivedBefore := s.retriesSpent(), s.archived()
	time.Sleep(quietWindow)
	after, archivedAfter := s.retriesSpent(), s.archived()
	require.Zero(t, archivedBefore+archivedAfter, "archived while answers did not verify")
	require.Equal(t, before, after, "retries spent while the circuit was open")
	s.report("circuit open %s after answers stopped verifying; in the %s after, %d retries spent and %d archived",
		opened.Sub(broke).Round(time.Millisecond), quietWindow, after-before, archivedAfter)
}

// TestCertificateRotationMidRun: workers in auto-download mode; mid-run
// WeChat moves to a new platform certificate. Each worker downloads the
// certificates again once, on the first answer signed with the new one,
// and imports go on: every member imported once, no retry spent on it.
func TestCertificateRotationMidRun(t *testing.T) {
	s := newScenario(t, "rotation", nil)
	dir := filepath.Dir(s.vars["WECHATPAY_MCH_PRIVATE_KEY_FILE"])
	delete(s.vars, "WECHATPAY_PUBLIC_KEY_ID")
	delete(s.vars, "WECHATPAY_PUBLIC_KEY_FILE")
	s.vars["WECHATPAY_APIV3_KEY_FILE"] = filepath.Join(dir, wechatpaytest.FileAPIv3Key)
	s.enqueueAll()
	s.startWorker()
	s.startWorker()
	s.waitImported(members / 3)
	atStart := len(s.srv.CertificateDownloads())
	_, err := s.srv.RotatePlatformCertificate()
	require.NoError(t, err)
	rotated := time.Now()
	resumed := s.waitResumed()
	done := s.waitDone()
	s.check()
	downloads := s.srv.CertificateDownloads()[atStart:]
	require.LessOrEqual(t, len(downloads), 2, "at most one download a minute per worker (2 workers)")
	s.report("rotated mid-run: imports went on %s after, all done %s after; %d certificate downloads after the rotation (2 workers)",
		seconds(resumed.Sub(rotated)), seconds(done.Sub(rotated)), len(downloads))
}

// retriesSpent sums the retries every member's task has spent so far.
func (s *scenario) retriesSpent() int {
	s.t.Helper()
	n := 0
	for _, m := range s.members {
		info, err := s.insp.GetTaskInfo(s.queue, m.OutRequestNo)
		require.NoError(s.t, err)
		n += info.Retried
	}
	return n
}

// archived counts the queue's archived tasks.
func (s *scenario) archived() int {
	s.t.Helper()
	info, err := s.insp.GetQueueInfo(s.queue)
	require.NoError(s.t, err)
	return info.Archived
}
