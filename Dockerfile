FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MIGRATIONS_DIR=/app/migrations \
    PORT=3012

WORKDIR /app
COPY pyproject.toml README.md ./
COPY campaignsvc ./campaignsvc
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /app campaignsvc \
    && mkdir -p /app/.campaignsvc && chown campaignsvc /app/.campaignsvc

USER campaignsvc
EXPOSE 3012
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:'+os.environ.get('PORT','3012')+'/health', timeout=4)"
ENTRYPOINT ["campaignsvc"]
CMD ["serve"]
