# Cronium runtime helpers for bash, loaded through BASH_ENV: scripts call
# them without sourcing anything. Each one runs the agent's API client
# (`/.cronium/agent api`), which does all JSON encoding. On an error the
# message goes to stderr as "cronium: <message>" and the status is non-zero.
# Sourcing this file only defines functions: it prints nothing, changes no
# shell option and may be sourced any number of times.

_cronium_api() { "${CRONIUM_AGENT_BIN:-/.cronium/agent}" api "$@"; }

# cronium_input: prints the execution's input JSON ({} when there is none).
cronium_input() { _cronium_api input -- "$@"; }

# cronium_output JSON: stores JSON as the execution's output. A large value
# (up to the 1 MiB output limit) goes over stdin: a command line holds at
# most 128 KiB per argument.
cronium_output() {
	if [ "$#" -ne 1 ] || [ "${#1}" -lt 100000 ]; then
		_cronium_api --json output -- "$@"
		return
	fi
	# One request line: JSON's own line breaks are only whitespace.
	{ printf '{"op":"output","value":'; printf '%s' "$1" | tr '\r\n' '  '; printf '}\n'; } | _cronium_api >/dev/null
}

# cronium_getVariable KEY: prints the value (a string without quotes, anything
# else as JSON); prints nothing when the variable is unset.
cronium_getVariable() { _cronium_api --raw getVariable -- "$@"; }

# cronium_setVariable KEY VALUE stores VALUE as a string;
# cronium_setVariable --json KEY JSON stores any JSON value.
cronium_setVariable() {
	if [ "${1-}" = --json ]; then
		shift
		_cronium_api --json setVariable -- "$@"
	else
		_cronium_api setVariable -- "$@"
	fi
}

# cronium_deleteVariable KEY
cronium_deleteVariable() { _cronium_api deleteVariable -- "$@"; }

# cronium_listVariables: prints a JSON object of every variable.
cronium_listVariables() { _cronium_api listVariables -- "$@"; }

# cronium_increment KEY [BY]: adds BY (default 1) and prints the new value.
cronium_increment() { _cronium_api increment -- "$@"; }

# cronium_setCondition true|false
cronium_setCondition() { _cronium_api setCondition -- "$@"; }

# cronium_getCondition: prints true or false.
cronium_getCondition() { _cronium_api getCondition -- "$@"; }

# cronium_event: prints the event and execution metadata as JSON.
cronium_event() { _cronium_api event -- "$@"; }
