"""Author the parser corpus: run this, and cases.json (the corpus tests read) is rewritten."""
import json
from pathlib import Path

cases = []


def case(name, text, status, keys=None, durations=None, done=False, warn=None, error=None):
    d = {"name": name, "text": text, "expect": {"status": status, "keystrokes": keys or [], "task_complete": done}}
    if durations is not None:
        d["expect"]["durations"] = durations
    if warn:
        d["expect"]["warnings_contain"] = warn
    if error:
        d["expect"]["error_contains"] = error
    cases.append(d)


STD = '{"analysis": "empty dir", "plan": "list", "commands": [{"keystrokes": "ls -la\\n", "duration": 0.5}], "task_complete": false}'
case("plain valid", STD, "ok", ["ls -la\n"], [0.5])
case("pretty printed", json.dumps(json.loads(STD), indent=2), "ok", ["ls -la\n"], [0.5])
case("two commands", '{"analysis": "", "plan": "", "commands": [{"keystrokes": "cd /app\\n", "duration": 0.1}, {"keystrokes": "cat a.txt\\n", "duration": 2}], "task_complete": false}', "ok", ["cd /app\n", "cat a.txt\n"], [0.1, 2.0])
case("fenced json", "```json\n" + STD + "\n```", "ok", ["ls -la\n"], warn=["extra text"])
case("fenced no lang", "```\n" + STD + "\n```", "ok", ["ls -la\n"])
case("prose around", "Sure! Here is my next step:\n" + STD + "\nLet me know.", "ok", ["ls -la\n"], warn=["extra text"])
case("think block with json", '<think>maybe {"commands": [{"keystrokes": "rm -rf /\\n"}]}</think>\n' + STD, "ok", ["ls -la\n"])
case("think block multiline", "<think>\nI should look.\n{\n</think>" + STD, "ok", ["ls -la\n"])
case("orphan closing think", 'reasoning about {"keystrokes": "reboot\\n"} stuff</think>' + STD, "ok", ["ls -la\n"])
case("unclosed think", '<think>I will run {"commands": [{"keystrokes": "ls\\n"}]} and then', "parse_fail", error="reasoning")
case("think then unclosed think", "<think>a</think>" + STD + "<think>more", "ok", ["ls -la\n"], warn=["unclosed"])
case("thinking tag", "<thinking>x</thinking>" + STD, "ok", ["ls -la\n"])
case("brace in prose before", "I will use the {} placeholder and {braces}. " + STD, "ok", ["ls -la\n"])
case("unbalanced brace in prose", "Careful with { in shell. " + STD, "ok", ["ls -la\n"])
case("split analysis then commands", '{"analysis": "dir empty", "plan": "create file"}\n{"commands": [{"keystrokes": "touch a\\n", "duration": 0.1}], "task_complete": false}', "ok", ["touch a\n"], [0.1], warn=["2 JSON objects"])
case("split with fences", '```json\n{"analysis": "x"}\n```\n```json\n{"commands": [{"keystrokes": "pwd\\n"}]}\n```', "ok", ["pwd\n"], [1.0])
case("two objects both with commands", '{"commands": [{"keystrokes": "echo 1\\n"}]}\n{"commands": [{"keystrokes": "echo 2\\n"}]}', "ok", ["echo 1\n"], warn=["ignored the commands"])
case("task_complete in first object", '{"analysis": "done", "task_complete": true}{"commands": [{"keystrokes": "ls\\n"}]}', "ok", ["ls\n"], done=True)
case("shorthand command", '{"command": "ls"}', "ok", ["ls\n"], [1.0], warn=['"command"'])
case("shorthand commands list", '{"analysis": "a", "commands": ["cd /app", "ls -l"]}', "ok", ["cd /app\n", "ls -l\n"])
case("shorthand key name", '{"commands": ["C-c"]}', "ok", ["C-c"])
case("shorthand keeps newline", '{"commands": ["ls\\n"]}', "ok", ["ls\n"])
case("commands as string", '{"commands": "make test"}', "ok", ["make test\n"], warn=["should be a list"])
case("bare command object", '{"keystrokes": "whoami\\n", "duration": 0.2}', "ok", ["whoami\n"], [0.2])
case("cmd alias", '{"commands": [{"cmd": "uname -a", "duration": 1}]}', "ok", ["uname -a\n"], warn=['"cmd"'])
case("trailing commas", '{"analysis": "a", "commands": [{"keystrokes": "ls\\n", "duration": 1,},], "task_complete": false,}', "ok", ["ls\n"])
case("comments", '{\n  // look first\n  "commands": [{"keystrokes": "ls\\n" /* quick */, "duration": 0.5}]\n}', "ok", ["ls\n"], [0.5])
case("single quotes", "{'analysis': 'x', 'commands': [{'keystrokes': 'ls\\n', 'duration': 0.5}], 'task_complete': False}", "ok", ["ls\n"], [0.5])
case("python booleans", '{"commands": [], "task_complete": True}', "ok", [], done=True)
case("python false none", '{"commands": [{"keystrokes": "ls\\n", "duration": None}], "task_complete": False}', "ok", ["ls\n"], [1.0])
case("missing closing braces", '{"analysis": "x", "commands": [{"keystrokes": "ls\\n", "duration": 0.5}], "task_complete": false', "ok", ["ls\n"], [0.5], warn=["not closed"])
case("missing array and braces", '{"analysis": "x", "commands": [{"keystrokes": "ls\\n", "duration": 0.5}', "ok", ["ls\n"], [0.5])
case("truncated keystrokes", '{"analysis": "x", "commands": [{"keystrokes": "ls\\n", "duration": 0.5}, {"keystrokes": "rm -rf /tmp/bu', "ok", ["ls\n"], [0.5], warn=["cut off"])
case("truncated only command", '{"analysis": "x", "commands": [{"keystrokes": "echo hel', "no_cmd", [], warn=["cut off"])
case("truncated shorthand", '{"commands": ["ls", "cat /etc/pass', "ok", ["ls\n"], warn=["cut off"])
case("truncated in analysis", '{"analysis": "the directory is empty and I need to', "no_cmd", [])
case("truncated literal", '{"commands": [{"keystrokes": "ls\\n"}], "task_complete": tr', "ok", ["ls\n"], done=False)
case("duration as string", '{"commands": [{"keystrokes": "sleep 2\\n", "duration": "3"}]}', "ok", ["sleep 2\n"], [3.0])
case("duration with unit", '{"commands": [{"keystrokes": "make\\n", "duration": "10s"}]}', "ok", ["make\n"], [10.0])
case("duration capped", '{"commands": [{"keystrokes": "make\\n", "duration": 600}]}', "ok", ["make\n"], [60.0], warn=["capped"])
case("duration garbage", '{"commands": [{"keystrokes": "make\\n", "duration": "long"}]}', "ok", ["make\n"], [1.0], warn=["unreadable duration"])
case("duration negative", '{"commands": [{"keystrokes": "ls\\n", "duration": -1}]}', "ok", ["ls\n"], [0.0])
case("duration missing", '{"commands": [{"keystrokes": "ls\\n"}]}', "ok", ["ls\n"], [1.0])
case("task_complete string", '{"commands": [], "task_complete": "true"}', "ok", [], done=True, warn=["string"])
case("task_complete string false", '{"commands": [], "task_complete": "false"}', "no_cmd", [], done=False)
case("task_complete only", '{"analysis": "finished", "plan": "", "commands": [], "task_complete": true}', "ok", [], done=True)
case("analysis only", '{"analysis": "I see an empty directory", "plan": "think more"}', "no_cmd", [])
case("empty commands", '{"analysis": "wait", "commands": [], "task_complete": false}', "no_cmd", [])
case("BOM and CRLF", "\ufeff{\r\n  \"commands\": [{\"keystrokes\": \"ls\\n\", \"duration\": 0.5}],\r\n  \"task_complete\": false\r\n}\r\n", "ok", ["ls\n"], [0.5])
case("empty reply", "", "parse_fail", error="empty")
case("whitespace reply", "  \n\t ", "parse_fail", error="empty")
case("prose only", "I would run ls -la to see the files.", "parse_fail", error="no JSON")
case("bash block only", "Run this:\n```bash\nls -la\ncat /etc/passwd\n```", "parse_fail")
case("json without action keys", '{"foo": 1, "bar": [2, 3]}', "parse_fail", error="action keys")
case("bash block plus json", "```bash\nrm -rf /\n```\n" + STD, "ok", ["ls -la\n"])
case("key names", '{"commands": [{"keystrokes": "C-c", "duration": 0.1}, {"keystrokes": "C-d"}]}', "ok", ["C-c", "C-d"])
case("escaped quotes", '{"commands": [{"keystrokes": "echo \\"hi there\\" > /app/a.txt\\n", "duration": 0.1}]}', "ok", ['echo "hi there" > /app/a.txt\n'])
case("braces inside strings", '{"commands": [{"keystrokes": "awk \'{print $1}\' f\\n"}], "plan": "use } and {"}', "ok", ["awk '{print $1}' f\n"])
case("heredoc keystrokes", '{"commands": [{"keystrokes": "cat > a.py << \'EOF\'\\nprint(1)\\nEOF\\n", "duration": 0.5}]}', "ok", ["cat > a.py << 'EOF'\nprint(1)\nEOF\n"])
case("unicode escape", '{"commands": [{"keystrokes": "echo \\u00e9\\n"}]}', "ok", ["echo \u00e9\n"])
case("wrapped in response key", '{"response": {"analysis": "x", "commands": [{"keystrokes": "ls\\n"}]}}', "ok", ["ls\n"])
case("terminus1 schema", '{"state_analysis": "x", "explanation": "y", "commands": [{"keystrokes": "ls\\n", "is_blocking": true, "timeout_sec": 5}], "is_task_complete": false}', "ok", ["ls\n"], [5.0])
case("raw newline in string", '{"commands": [{"keystrokes": "ls\n", "duration": 0.5}]}', "ok", ["ls\n"], [0.5])
case("empty keystrokes ignored", '{"commands": [{"keystrokes": ""}, {"keystrokes": "ls\\n"}]}', "ok", ["ls\n"])
case("long reply", "x " * 6000 + STD + " y" * 6000, "ok", ["ls -la\n"])
case("nested json in keystrokes", '{"commands": [{"keystrokes": "echo \'{\\"a\\": 1}\' > c.json\\n"}]}', "ok", ["echo '{\"a\": 1}' > c.json\n"])
case("only opening brace", "{", "parse_fail")
case("deeply nested braces", "{" * 5000, "parse_fail")
case("long single-quoted reply", "{'analysis': '" + "word " * 2000 + "', 'commands': [{'keystrokes': 'ls\\n'}],", "ok",
     ["ls\n"])
case("many prose braces", "use { here and } there " * 500 + STD, "ok", ["ls -la\n"])
case("unquoted keys", '{commands: [{keystrokes: "ls\\n", duration: 2}], task_complete: false}', "ok", ["ls\n"], [2.0])

with open(Path(__file__).with_name("cases.json"), "w") as f:
    json.dump(cases, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(len(cases))
