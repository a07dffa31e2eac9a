# runtime.json (LinuxKit's runtime configuration of a container) as shell commands.
# Installed as /usr/lib/kitdsl/runtime.awk; run with busybox awk:
#
#   awk -f runtime.awk BUNDLE/runtime.json
#
# prints one call per action, arguments single-quoted, in the order LinuxKit applies them:
#
#   rt_mount DESTINATION TYPE SOURCE OPTIONS   (options joined with commas)
#   rt_mkdir PATH
#   rt_cgroup NAME
#   rt_iface NAME ADD PEER CREATE_IN_ROOT      (true or false)
#   rt_bindns NAMESPACE PATH                   (only the namespaces given a path)
#
# each followed by "|| return 1", for a shell function to eval. The JSON is parsed in full (any
# spacing, any key order, escapes), not matched line by line: a runtime.json written by another
# tool than kitdsl or LinuxKit reads the same. On malformed JSON it says where and exits 1.

function fail(what) {
	printf "runtime.awk: %s: %s at character %d\n", FILENAME, what, pos > "/dev/stderr"
	exit 1
}

function skip_space() {
	while (pos <= len && index(" \t\r\n", substr(text, pos, 1)))
		pos++
}

function expect(c) {
	skip_space()
	if (substr(text, pos, 1) != c)
		fail("expected '" c "'")
	pos++
}

# Store the value at text[pos] under PATH: strings and literals in value[PATH], the number of
# elements of an array in count[PATH] (elements are PATH.0, PATH.1, ...).
function parse_value(path,    c) {
	skip_space()
	c = substr(text, pos, 1)
	if (c == "{")
		parse_object(path)
	else if (c == "[")
		parse_array(path)
	else if (c == "\"")
		value[path] = parse_string()
	else if (match(substr(text, pos), /^(true|false|null|-?[0-9][0-9.eE+-]*)/)) {
		c = substr(text, pos, RLENGTH)
		value[path] = c == "null" ? "" : c
		pos += RLENGTH
	} else
		fail("unexpected '" c "'")
}

function parse_object(path,    key, c) {
	expect("{")
	skip_space()
	if (substr(text, pos, 1) == "}") {
		pos++
		return
	}
	while (1) {
		skip_space()
		key = parse_string()
		expect(":")
		parse_value(path == "" ? key : path "." key)
		skip_space()
		c = substr(text, pos++, 1)
		if (c == "}")
			return
		if (c != ",")
			fail("expected ',' or '}'")
	}
}

function parse_array(path,    n, c) {
	expect("[")
	n = 0
	skip_space()
	if (substr(text, pos, 1) == "]") {
		pos++
		count[path] = 0
		return
	}
	while (1) {
		parse_value(path "." n++)
		skip_space()
		c = substr(text, pos++, 1)
		if (c == "]")
			break
		if (c != ",")
			fail("expected ',' or ']'")
	}
	count[path] = n
}

function parse_string(    out, c, e) {
	if (substr(text, pos, 1) != "\"")
		fail("expected a string")
	pos++
	out = ""
	while (pos <= len) {
		# Copy a run of plain characters at once.
		if (match(substr(text, pos), /^[^"\\]+/)) {
			out = out substr(text, pos, RLENGTH)
			pos += RLENGTH
			continue
		}
		c = substr(text, pos++, 1)
		if (c == "\"")
			return out
		e = substr(text, pos++, 1)
		if (e == "n") out = out "\n"
		else if (e == "t") out = out "\t"
		else if (e == "r") out = out "\r"
		else if (e == "b") out = out "\b"
		else if (e == "f") out = out "\f"
		else if (e == "u")
			out = out utf8(code_point())
		else out = out e
	}
	fail("unterminated string")
}

# The code point of a \u escape (pos is after the "u"): a UTF-16 surrogate pair is one code
# point; a lone surrogate, or NUL (which no path or name can hold), is refused.
function code_point(    n, low) {
	n = hex4()
	if (n >= 56320 && n < 57344)
		fail("a lone low surrogate in a string")
	if (n >= 55296 && n < 56320) {
		if (substr(text, pos, 2) != "\\u")
			fail("a lone high surrogate in a string")
		pos += 2
		low = hex4()
		if (low < 56320 || low >= 57344)
			fail("a high surrogate without its low surrogate in a string")
		n = 65536 + (n - 55296) * 1024 + (low - 56320)
	}
	if (n == 0)
		fail("a NUL character (\\u0000) in a string")
	return n
}

function hex4(    digits, i, n) {
	digits = tolower(substr(text, pos, 4))
	if (digits !~ /^[0-9a-f][0-9a-f][0-9a-f][0-9a-f]$/)
		fail("a \\u escape without four hexadecimal digits")
	n = 0
	for (i = 1; i <= 4; i++)
		n = n * 16 + index("0123456789abcdef", substr(digits, i, 1)) - 1
	pos += 4
	return n
}

# A code point as UTF-8.
function utf8(n) {
	if (n < 128)
		return sprintf("%c", n)
	if (n < 2048)
		return sprintf("%c%c", 192 + int(n / 64), 128 + n % 64)
	if (n < 65536)
		return sprintf("%c%c%c", 224 + int(n / 4096), 128 + int(n / 64) % 64, 128 + n % 64)
	return sprintf("%c%c%c%c", 240 + int(n / 262144), 128 + int(n / 4096) % 64, \
		128 + int(n / 64) % 64, 128 + n % 64)
}

# A word for the shell: single-quoted, a single quote written '\''.
function quote(s) {
	gsub(/'/, "'\\''", s)
	return "'" s "'"
}

function emit(line) {
	print line " || return 1"
}

{ text = text $0 "\n" }

END {
	len = length(text)
	pos = 1
	parse_value("")
	skip_space()
	if (pos <= len)
		fail("text after the document")
	for (i = 0; i < count["mounts"]; i++) {
		m = "mounts." i
		options = ""
		for (j = 0; j < count[m ".options"]; j++)
			options = options (j ? "," : "") value[m ".options." j]
		emit("rt_mount " quote(value[m ".destination"]) " " quote(value[m ".type"]) " " \
			quote(value[m ".source"]) " " quote(options))
	}
	for (i = 0; i < count["mkdir"]; i++)
		emit("rt_mkdir " quote(value["mkdir." i]))
	for (i = 0; i < count["cgroups"]; i++)
		emit("rt_cgroup " quote(value["cgroups." i]))
	for (i = 0; i < count["interfaces"]; i++) {
		f = "interfaces." i
		emit("rt_iface " quote(value[f ".name"]) " " quote(value[f ".add"]) " " \
			quote(value[f ".peer"]) " " quote(value[f ".createInRoot"] == "true" ? "true" : "false"))
	}
	split("cgroup ipc mnt net pid user uts", namespaces, " ")
	for (i = 1; i <= 7; i++)
		if (value["bindNS." namespaces[i]] != "")
			emit("rt_bindns " namespaces[i] " " quote(value["bindNS." namespaces[i]]))
}
