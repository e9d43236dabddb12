"""Write the custom connector's apiDefinition.swagger.json from the app's served OpenAPI 2.0 document.

The connector describes exactly what the app serves at GET /api/swagger.json, plus the host a connector needs
(a placeholder to replace with your function app's host name). A test keeps the file in step.
Run: python docs/logic-apps/build.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

HOST_PLACEHOLDER = "YOUR-FUNCTION-APP.azurewebsites.net"


def api_definition() -> dict[str, Any]:
    from shared.swagger import swagger_document

    return {**swagger_document(), "host": HOST_PLACEHOLDER}


if __name__ == "__main__":
    text = json.dumps(api_definition(), indent=2, ensure_ascii=False) + "\n"
    (HERE / "apiDefinition.swagger.json").write_text(text, encoding="utf-8")
