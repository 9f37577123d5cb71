package redact

import (
	"encoding/json"
	"strings"
	"testing"
)

// Secrets written with JSON escapes are found; the document keeps its order.
func TestJSONFindsEscapedSecrets(t *testing.T) {
	secrets := [][]byte{[]byte("ümlaut-ßecret-€€"), []byte(`pa"ss\word-1234`), []byte("plain-secret-99")}
	py, _ := json.Marshal(map[string]string{"b": "ümlaut-ßecret-€€"}) // Go escapes nothing here; python would
	for _, doc := range []string{
		`{"z":"\u00fcmlaut-\u00dfecret-\u20ac\u20ac","a":"pa\"ss\\word-1234","n":[1,2.5,true,null,{"plain-secret-99":"x"}]}`,
		string(py),
		`"plain-secret-99 and more"`,
	} {
		got := string(JSON([]byte(doc), secrets))
		for _, s := range []string{"mlaut", `pa\"ss`, "plain-secret-99"} {
			if strings.Contains(got, s) {
				t.Errorf("%s -> %s: still holds %s", doc, got, s)
			}
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s -> %s: not JSON", doc, got)
		}
	}
	got := string(JSON([]byte(`{"z": 1, "a": [1, {"k": "v"}], "m": "x"}`), secrets))
	if got != `{"z":1,"a":[1,{"k":"v"}],"m":"x"}` {
		t.Errorf("order or form changed: %s", got)
	}
}
