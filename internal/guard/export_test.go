package guard

// ViewFresh is viewFresh, for the tests of package guard_test.
const ViewFresh = viewFresh
