"""Failure notifications to a chat webhook (Slack and Microsoft Teams incoming webhooks).

Both accept a JSON body with a ``text`` field; the structured fields ride along for other
receivers. The URL is a secret: it is never logged or put in an error message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FailureNotice:
    job: str
    run_id: str
    failed_steps: list[str]
    error: str
    run_url: str

    def payload(self) -> dict:
        steps = ", ".join(self.failed_steps) or "(run-level failure)"
        text = (
            f"**medallion-assets: run failed**\n\n"
            f"Job: `{self.job}`\n\nRun: [{self.run_id}]({self.run_url})\n\n"
            f"Failed step: `{steps}`\n\nError: {self.error[:1500]}"
        )
        return {"title": f"medallion-assets: {self.job} failed", "summary": f"{self.job} failed", "text": text, **asdict(self)}


class NotificationFailed(RuntimeError):
    pass


def post_json(url: str, payload: dict, *, timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Errors never contain the URL."""
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (URL from the operator)
            return response.status
    except urllib.error.HTTPError as exc:
        raise NotificationFailed(f"webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotificationFailed(f"webhook not reachable ({type(reason).__name__})") from None
