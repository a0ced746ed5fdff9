"""One router per resource; `api.app` composes them."""
