FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 IEX_VAR_DIR=/app/var STATIC_ROOT=/app/staticfiles
WORKDIR /app

COPY pyproject.toml ./
RUN pip install --no-cache-dir . && rm -rf build *.egg-info

COPY . .
# collectstatic with development settings in a throwaway folder: nothing of it reaches a running container
# except the hashed static files.
RUN DEBUG=1 IEX_VAR_DIR=/tmp/build-var python manage.py collectstatic --no-input \
 && rm -rf /tmp/build-var \
 && useradd --system --home /app iex && mkdir -p /app/var && chown -R iex /app/var

USER iex
EXPOSE 8000
CMD ["gunicorn", "iex.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
