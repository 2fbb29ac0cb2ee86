# puma recipe (test/test_recipes.py): puma -C puma.rb config.ru, behind hupwatch --listen.
# Serve the socket hupwatch passes (LISTEN_FDS) and bind nothing else (not even the default 9292).
bind_to_activated_sockets "only"
# After the graceful stop on TERM, exit 0 rather than re-raise SIGTERM (status 143).
raise_exception_on_sigterm false
# Read each request in the thread that accepted it: with the reactor (the default), a stop closes
# connections accepted but not read yet.
queue_requests false
