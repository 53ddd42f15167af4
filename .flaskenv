# Read by `flask` (Flask's own file): where `flask run` listens. HOST and PORT, from the
# environment, as the run command takes them (the tutorial's 3000 by default). Flask finds the
# app factory in app.py by itself.
FLASK_RUN_HOST=${HOST:-127.0.0.1}
FLASK_RUN_PORT=${PORT:-3000}
