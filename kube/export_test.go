package kube

// PodState is podState, for the tests.
var PodState = podState

// AgentOf is agentOf, for the tests.
var AgentOf = agentOf
