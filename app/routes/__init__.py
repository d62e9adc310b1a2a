"""HTTP routes: pages (HTML with HTMX fragments), the JSON API under /api/v1, health."""
