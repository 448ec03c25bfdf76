"""The README's examples do what they say (issue 19, item 9).

Every `curl` command of the README's sh blocks (and `build/raftmetrics stats`)
runs, in order, against a fresh `raftmetrics local` (the README's defaults: 2
workers, 16 shards) on free ports. Each must be followed by a `# → ` line: JSON
there is a subset the answer must contain (objects by key, lists item by item);
anything else is text the answer must contain (blanks collapsed). An example without its `# → `
line fails the test, so the README cannot show a command without saying what
it answers."""
import json
import os
import re
import subprocess
import unittest

import rmtest as R

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
EXPECT = "# → "


def examples(text):
    """[(command, expected)] of the sh blocks, in order."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines = block.split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("curl ") or line.startswith("build/raftmetrics stats"):
                cmd = [line]
                # Continued by a trailing backslash, or inside a quoted argument.
                while i + 1 < len(lines) and (cmd[-1].rstrip().endswith("\\") or
                                              "\n".join(cmd).count("'") % 2 == 1):
                    i += 1
                    cmd.append(lines[i])
                expected = lines[i + 1][len(EXPECT):] if i + 1 < len(lines) and lines[i + 1].startswith(EXPECT) \
                    else None
                out.append(("\n".join(cmd), expected))
            i += 1
    return out


def contains(have, want, path="$"):
    """None when `have` contains `want` (see the module doc), else where it differs."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return "%s: expected an object, got %r" % (path, have)
        for k, v in want.items():
            if k not in have:
                return "%s: no field %r in %r" % (path, k, sorted(have))
            d = contains(have[k], v, "%s.%s" % (path, k))
            if d:
                return d
        return None
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return "%s: expected %d items, got %r" % (path, len(want), have)
        for n, (h, w) in enumerate(zip(have, want)):
            d = contains(h, w, "%s[%d]" % (path, n))
            if d:
                return d
        return None
    if isinstance(want, float) or isinstance(have, float):
        ok = isinstance(have, (int, float)) and not isinstance(have, bool) and abs(have - want) <= 1e-9 * max(1, abs(want))
    else:
        ok = have == want
    return None if ok else "%s: expected %r, got %r" % (path, want, have)


class ReadmeTest(unittest.TestCase):
    def test_every_example_answers_what_the_readme_shows(self):
        with open(README, encoding="utf-8") as f:
            found = examples(f.read())
        self.assertGreaterEqual(len(found), 10, found)
        missing = [cmd for cmd, want in found if want is None]
        self.assertEqual(missing, [], "README examples without a '# → ' line")

        # The README's next line after `make run` is a write: no waiting beyond the banner.
        with R.Local(name="rm-readme-") as local:
            d, port, wport, token = local.dir, local.port, local.worker_port, local.token
            ports = {"8080": str(port), "8081": str(wport), "8082": str(wport + 1)}

            def on_ports(s):
                return re.sub(r"\b(8080|8081|8082)\b", lambda m: ports[m.group(1)], s)
            env = dict(os.environ, TOKEN=token, A="Authorization: Bearer " + token, AUTH_TOKEN=token,
                       CONTROL_HOST="127.0.0.1:%d" % port)
            for cmd, want in found:
                run = on_ports(cmd).replace("build/raftmetrics", R.BINARY)
                p = subprocess.run(["bash", "-c", run], env=env, cwd=d, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=30)
                out = p.stdout.decode("utf-8", "replace")
                self.assertEqual(p.returncode, 0, "%s\n-> rc %d: %s" % (cmd, p.returncode, out))
                want = on_ports(want)
                try:
                    expected = json.loads(want)
                except ValueError:
                    expected = None
                if isinstance(expected, (dict, list)):
                    diff = contains(json.loads(out), expected)
                    self.assertIsNone(diff, "%s\n-> %s\n%s" % (cmd, out, diff))
                else:  # text, compared with runs of blanks as one (columns)
                    self.assertIn(" ".join(want.split()), " ".join(out.split()), cmd)


if __name__ == "__main__":
    R.main()
