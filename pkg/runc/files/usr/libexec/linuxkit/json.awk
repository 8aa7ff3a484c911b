# json.awk: flatten one JSON document into "PATH<TAB>VALUE" lines, for the runner scripts (busybox awk: the
# image has no jq, whose start-up alone costs a large part of a second under emulation).
#
#   awk -f json.awk [-v top=object] FILE
#
# One line per scalar and per EMPTY array/object (a non-empty container is given by its members), in document
# order. PATH is a jq path expression: `.key` for identifier keys, `["any key"]` (JSON-escaped) otherwise, `[N]`
# for array elements, `.` for the document itself; e.g. `.mounts[0].options[1]`, `.annotations["a.b"]`.
# VALUE is what `jq -r` prints: strings decoded (\uXXXX to UTF-8), numbers as written, true, false, null, and
# `{}` / `[]` for empty containers. So that a record stays on one line, strings have backslash, newline, tab,
# carriage return and NUL written as \\ \n \t \r \0 (a value without a backslash is exactly the string).
# Invalid JSON (or, with -v top=object, a document that is not an object): a message on stderr, no output, exit 1.
# JSON cannot hold a raw newline inside a token, so the input is tokenized line by line.

BEGIN {
	for (i = 1; i < 256; i++) CHR[i] = sprintf("%c", i)
	for (i = 0; i < 16; i++) {
		HEX[sprintf("%x", i)] = i
		HEX[sprintf("%X", i)] = i
	}
	# bytes a JSON string may not hold raw (control characters), and those needing care in the output
	CTL = "["
	for (i = 1; i < 32; i++) CTL = CTL CHR[i]
	CTL = CTL "]"
	depth = 0   # open containers; KIND[d] "o"|"a", CPATH[d] their path, COUNT[d] array index, KEYPATH[d]
	state = "V" # V value, VE value or ], KE key or }, K key, C colon, CE comma or end, DONE
	nrec = 0
	err = ""
}

function fail(msg) {
	if (err == "") err = msg " (line " NR ")"
}

# path of the value about to be read
function here() {
	if (depth == 0) return ""
	if (KIND[depth] == "o") return KEYPATH[depth]
	return (CPATH[depth] == "" ? "." : CPATH[depth]) "[" COUNT[depth] "]"
}

function emit(path, value) {
	REC[++nrec] = (path == "" ? "." : path) "\t" value
}

function open_container(kind, p) {
	p = here()
	depth++
	KIND[depth] = kind
	CPATH[depth] = p
	COUNT[depth] = 0
}

function close_container(kind) {
	if (KIND[depth] != kind) {
		fail("mismatched " (kind == "o" ? "}" : "]"))
		return
	}
	depth--
	after_value()
}

function after_value() {
	state = depth == 0 ? "DONE" : "CE"
}

function utf8(cp) {
	if (cp < 128) return CHR[cp]
	if (cp < 2048) return CHR[192 + int(cp / 64)] CHR[128 + cp % 64]
	if (cp < 65536) return CHR[224 + int(cp / 4096)] CHR[128 + int(cp / 64) % 64] CHR[128 + cp % 64]
	return CHR[240 + int(cp / 262144)] CHR[128 + int(cp / 4096) % 64] CHR[128 + int(cp / 64) % 64] CHR[128 + cp % 64]
}

function hex4(s, i, v, h) {
	v = 0
	for (i = 1; i <= 4; i++) {
		h = substr(s, i, 1)
		if (!(h in HEX)) return -1
		v = v * 16 + HEX[h]
	}
	return v
}

# one code point as written in a value (record escapes) or in a key (JSON escapes, as jq's tojson)
function code_point(cp, forkey) {
	if (forkey) {
		if (cp == 34) return "\\\""
		if (cp == 92) return "\\\\"
		if (cp == 8) return "\\b"
		if (cp == 9) return "\\t"
		if (cp == 10) return "\\n"
		if (cp == 12) return "\\f"
		if (cp == 13) return "\\r"
		if (cp < 32 || cp == 127) return sprintf("\\u%04x", cp)
		return utf8(cp)
	}
	if (cp == 0) return "\\0"
	if (cp == 92) return "\\\\"
	if (cp == 9) return "\\t"
	if (cp == 10) return "\\n"
	if (cp == 13) return "\\r"
	return utf8(cp)
}

# the body of a string token (between the quotes), decoded for a value or a key
function decode(body, forkey, out, i, c, cp, lo) {
	if (body ~ CTL) {
		fail("control character in string")
		return ""
	}
	if (index(body, "\\") == 0) {
		if (forkey && index(body, CHR[127])) gsub(CHR[127], "\\u007f", body)
		return body
	}
	out = ""
	while ((i = index(body, "\\")) > 0) {
		out = out substr(body, 1, i - 1)
		c = substr(body, i + 1, 1)
		body = substr(body, i + 2)
		if (c == "\"") out = out (forkey ? "\\\"" : "\"")
		else if (c == "\\") out = out "\\\\"
		else if (c == "/") out = out "/"
		else if (c == "b") out = out (forkey ? "\\b" : CHR[8])
		else if (c == "f") out = out (forkey ? "\\f" : CHR[12])
		else if (c == "n") out = out "\\n"
		else if (c == "r") out = out "\\r"
		else if (c == "t") out = out "\\t"
		else if (c == "u") {
			cp = hex4(body)
			if (cp < 0) {
				fail("bad \\u escape")
				return ""
			}
			body = substr(body, 5)
			if (cp >= 55296 && cp < 56320) {
				# a high surrogate must be followed by a low one (an error for jq too)
				lo = substr(body, 1, 2) == "\\u" ? hex4(substr(body, 3)) : -1
				if (lo < 56320 || lo >= 57344) {
					fail("unpaired surrogate in \\u escape")
					return ""
				}
				cp = 65536 + (cp - 55296) * 1024 + (lo - 56320)
				body = substr(body, 7)
			} else if (cp >= 56320 && cp < 57344) cp = 65533 # a lone low surrogate: U+FFFD, as jq
			out = out code_point(cp, forkey)
		} else {
			fail("bad escape \\" c)
			return ""
		}
	}
	out = out body
	if (forkey && index(out, CHR[127])) gsub(CHR[127], "\\u007f", out)
	return out
}

{
	s = $0
	while (err == "") {
		sub(/^[ \t\r]+/, "", s)
		if (s == "") break
		c = substr(s, 1, 1)
		if (state == "DONE") {
			fail("trailing data after the document")
		} else if (state == "V" || state == "VE") {
			if (c == "]" && state == "VE") {
				emit(CPATH[depth], "[]")
				s = substr(s, 2)
				close_container("a")
			} else if (c == "{") {
				open_container("o")
				state = "KE"
				s = substr(s, 2)
			} else if (c == "[") {
				open_container("a")
				state = "VE"
				s = substr(s, 2)
			} else if (c == "\"") {
				if (!match(s, /^"([^"\\]|\\.)*"/)) {
					fail("unterminated string")
					break
				}
				v = decode(substr(s, 2, RLENGTH - 2), 0)
				emit(here(), v)
				s = substr(s, RLENGTH + 1)
				after_value()
			} else if (match(s, /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/) || match(s, /^(true|false|null)/)) {
				emit(here(), substr(s, 1, RLENGTH))
				s = substr(s, RLENGTH + 1)
				after_value()
			} else fail("unexpected '" c "'")
		} else if (state == "KE" || state == "K") {
			if (c == "}" && state == "KE") {
				emit(CPATH[depth], "{}")
				s = substr(s, 2)
				close_container("o")
			} else if (c == "\"" && match(s, /^"([^"\\]|\\.)*"/)) {
				k = decode(substr(s, 2, RLENGTH - 2), 1)
				if (k ~ /^[A-Za-z_][A-Za-z0-9_]*$/) KEYPATH[depth] = CPATH[depth] "." k
				else KEYPATH[depth] = (CPATH[depth] == "" ? "." : CPATH[depth]) "[\"" k "\"]"
				s = substr(s, RLENGTH + 1)
				state = "C"
			} else fail("expected a key")
		} else if (state == "C") {
			if (c != ":") fail("expected ':'")
			s = substr(s, 2)
			state = "V"
		} else if (state == "CE") {
			s = substr(s, 2)
			if (c == ",") {
				if (KIND[depth] == "a") {
					COUNT[depth]++
					state = "V"
				} else state = "K"
			} else if (c == "}") close_container("o")
			else if (c == "]") close_container("a")
			else fail("expected ',' or the end of the " (KIND[depth] == "o" ? "object" : "array"))
		}
	}
}

END {
	if (err == "" && state != "DONE") fail(nrec == 0 && depth == 0 ? "no JSON document" : "unexpected end of input")
	if (err == "" && top == "object" && REC[1] !~ /^\.([A-Za-z_]|\[")/ && REC[1] != ".\t{}") err = "not a JSON object"
	if (err != "") {
		print "json: " FILENAME ": " err > "/dev/stderr"
		exit 1
	}
	for (i = 1; i <= nrec; i++) print REC[i]
}
