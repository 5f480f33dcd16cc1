"""``runner import-leads``: a file of leads from a terminal, previewed and imported in batches, resumable.

    runner import-leads leads.xlsx --actor thuy             # preview, then import every valid row
    runner import-leads leads.xlsx --actor thuy --preview   # only the preview (its id, its counts)
    runner import-leads --resume IMPORT_ID --actor thuy     # go on with an interrupted import

For files too large to import while a page stays open; the rows are the very rows of the import page.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from runner.commands import open_runner
from runner.crm import lead_imports
from runner.errors import Invalid
from runner.service import accounts as users
from runner.service import policy


def add_command(sub: Any) -> None:
    """Add ``import-leads`` to the ``runner`` command's sub-commands."""
    p = sub.add_parser("import-leads", help="import leads from a CSV or XLSX file (preview, then the valid rows)")
    p.add_argument("file", nargs="?", help="the .csv or .xlsx file (its first row names the columns)")
    p.add_argument("--actor", required=True, help="the staff member who imports (their permissions apply)")
    p.add_argument("--preview", action="store_true", help="only check and keep the rows; import nothing")
    p.add_argument("--resume", metavar="IMPORT_ID", help="go on with this import instead of reading a file")
    p.set_defaults(fn=run)


def run(args: Any, settings: Any) -> None:
    """Preview the file (or take ``--resume``'s import), import its valid rows, print the counts as JSON."""
    runner = open_runner(settings)
    found = users.get_user(runner, args.actor)
    if found is None:
        raise Invalid(f"--actor {args.actor!r} is no user")
    person = policy.Person.of(found["username"], found["roles"])
    if args.resume:
        import_id = args.resume
    elif args.file:
        path = Path(args.file)
        import_id = lead_imports.preview(runner, path.name, path.read_bytes(), by=person.username)
    else:
        raise Invalid("name a file, or --resume IMPORT_ID")
    if not args.preview:
        while lead_imports.run_batch(runner, import_id, person=person, size=100):
            done = lead_imports.progress(runner, import_id)
            print(f"{done['done']}/{done['valid']}", file=sys.stderr)
    print(json.dumps({"id": import_id, **lead_imports.progress(runner, import_id)}, ensure_ascii=False))
