FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 IEX_VAR_DIR=/app/var STATIC_ROOT=/app/staticfiles
WORKDIR /app

COPY pyproject.toml ./
RUN pip install --no-cache-dir . && rm -rf build *.egg-info

COPY . .
# collectstatic needs settings that import; these throwaway values never reach a running container.
RUN DEBUG=0 SECRET_KEY=collectstatic-only ALLOWED_HOSTS=build CREDENTIALS_KEYS=$(python -c \
    "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
    python manage.py collectstatic --no-input \
 && useradd --system --home /app iex && mkdir -p /app/var && chown -R iex /app/var

USER iex
EXPOSE 8000
CMD ["gunicorn", "iex.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
