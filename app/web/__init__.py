"""Web plumbing shared by every route: the app factory and what wraps each request.

app          ``create_app()``: middleware, error handlers, routers, static files
deps         dependencies: database session, signed-in user, workspace access (with role)
errors       ServiceError → a clear 4xx page or JSON body; no traceback ever reaches a page
middleware   security headers (a strict CSP), request ids
templating   Jinja2 environment, fragment rendering for htmx requests
rendering    Markdown → sanitised HTML for model output
ratelimit    Redis counters for sign-in attempts
"""
