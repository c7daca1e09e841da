// Package importer runs one member's import: the asynq handler that calls
// WeChat Pay through an Importer (the client, wrapped by the guard and the
// metrics), settles what WeChat's answers show into one typed outcome
// (imported, already a member with the code WeChat lists, dead with
// WeChat's code, or retried), the retry policy asynq reads that decision
// through (IsFailure, RetryDelay), and the deadline arithmetic of an
// attempt. It is the worker's side of the contract package tasks states.
package importer
