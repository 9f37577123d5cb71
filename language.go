package cronium

import (
	"bytes"
	"path/filepath"
	"strings"
)

// Language is a script runtime.
type Language string

// Languages Cronium runs.
const (
	Bash   Language = "bash"
	Python Language = "python"
	Node   Language = "node"
)

// Languages lists every supported language.
var Languages = []Language{Bash, Python, Node}

// ParseLanguage validates a language name; "sh", "python3", "nodejs" and "js" are accepted aliases.
func ParseLanguage(field, s string) (Language, error) {
	switch strings.ToLower(s) {
	case "bash", "sh":
		return Bash, nil
	case "python", "python3", "py":
		return Python, nil
	case "node", "nodejs", "js", "javascript":
		return Node, nil
	}
	return "", Invalid(field, s, "is not a language: want bash, python or node")
}

// DetectLanguage guesses the language from the file name's extension, then
// from a shebang line. It returns "" when neither tells.
func DetectLanguage(name string, script []byte) Language {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".sh", ".bash":
		return Bash
	case ".py":
		return Python
	case ".js", ".mjs", ".cjs":
		return Node
	}
	if !bytes.HasPrefix(script, []byte("#!")) {
		return ""
	}
	line, _, _ := bytes.Cut(script, []byte("\n"))
	switch s := string(line); {
	case strings.Contains(s, "python"):
		return Python
	case strings.Contains(s, "node"):
		return Node
	case strings.Contains(s, "bash"), strings.HasSuffix(strings.TrimSpace(s), "/sh"):
		return Bash
	}
	return ""
}

// ScriptName is the file name the agent gives the script in the workspace.
func (l Language) ScriptName() string {
	switch l {
	case Python:
		return "script.py"
	case Node:
		return "script.js"
	}
	return "script.sh"
}

// Command is the interpreter command line for a script at path.
func (l Language) Command(path string) []string {
	switch l {
	case Python:
		return []string{"python3", "-u", path}
	case Node:
		return []string{"node", path}
	}
	return []string{"bash", path}
}
