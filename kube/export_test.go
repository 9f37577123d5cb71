package kube

// PodState is podState, for the tests.
var PodState = podState
