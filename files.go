package cronium

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Limits of an event's files (the folder next to its script).
const (
	// MaxFileCount bounds how many files an event carries.
	MaxFileCount = 200
	// maxFileDepth bounds how deep its folders go.
	maxFileDepth = 8
)

// DefaultMaxFiles is a tier's limit on an event's files when it sets none.
func DefaultMaxFiles(tier string) Size {
	switch tier {
	case "enterprise":
		return 8 << 20
	case "pro":
		return 2 << 20
	}
	return 256 << 10
}

var filePath = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,127})*$`)

// reservedFiles are names the engine writes in the workspace itself.
var reservedFiles = map[string]bool{"script.sh": true, "script.py": true, "script.js": true, "input.json": true, "output.json": true}

// CheckFiles validates an event's files: relative paths of letters, digits,
// '.', '_' and '-' (no component starting with '.', so no "..", no hidden
// files), at most MaxFileCount of them, max bytes in all. field names them
// in errors.
func CheckFiles(field string, files map[string][]byte, max Size) error {
	if len(files) > MaxFileCount {
		return Invalid(field, fmt.Sprint(len(files)), fmt.Sprintf("holds too many files: at most %d", MaxFileCount))
	}
	var total int64
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, p := range names {
		if !filePath.MatchString(p) || len(p) > 1024 {
			return Invalid(field, p, "is not a relative path of letters, digits, '.', '_' and '-' (no component may start with '.'): like lib/util.py or data.csv")
		}
		if strings.Count(p, "/") >= maxFileDepth {
			return Invalid(field, p, fmt.Sprintf("is nested too deep: at most %d folders", maxFileDepth))
		}
		if reservedFiles[p] {
			return Invalid(field, p, "is a name the engine uses in the workspace (the script, input.json, output.json): rename it")
		}
		parts := strings.Split(p, "/")
		for i := 1; i < len(parts); i++ {
			dirs[strings.Join(parts[:i], "/")] = true
		}
		total += int64(len(files[p]))
	}
	for _, p := range names {
		if dirs[p] {
			return Invalid(field, p, "is both a file and a folder")
		}
	}
	if total > int64(max) {
		return Invalid(field, Size(total).String(), fmt.Sprintf("are larger than the %s limit for an event's files", max))
	}
	return nil
}
