# Rack twin of test/e2e_app.py for puma (test/test_readiness_real.py): every answer is
# "release=R gen=N pid=P", R the file RELEASE beside this file. The same knobs, files beside it:
#   E2E_APP_BROKEN  raise at boot          E2E_APP_SLOW N    boot takes N seconds
#   E2E_APP_HEALTH  status of GET /health  E2E_APP_CRASH N   N s after the first 2xx to /health, the
#     process stops itself with SIGTERM (puma's graceful stop: no request it accepted is lost)
here = File.dirname(File.realpath(__FILE__))
knob = ->(name) { File.exist?(File.join(here, name)) ? File.read(File.join(here, name)).strip : nil }
raise "e2e_app.ru: this release is broken on purpose (E2E_APP_BROKEN exists)" if knob.("E2E_APP_BROKEN")
sleep Float(knob.("E2E_APP_SLOW")) if knob.("E2E_APP_SLOW")
release = (knob.("RELEASE") || File.basename(here))
gen = ENV.fetch("HUPWATCH_GENERATION", "?")
health = Integer(knob.("E2E_APP_HEALTH") || "200")
crash = knob.("E2E_APP_CRASH") && Float(knob.("E2E_APP_CRASH"))
crash_at = nil
lock = Mutex.new
run lambda { |env|
  body = "release=#{release} gen=#{gen} pid=#{Process.pid}\n"
  status = 200
  if env["PATH_INFO"] == "/health"
    status = health
    if crash && status / 100 == 2
      lock.synchronize do
        crash_at ||= Time.now + crash
        if Time.now >= crash_at && env["rack.after_reply"]
          env["rack.after_reply"] << -> { Process.kill("TERM", Process.pid) }
          crash = nil
        end
      end
    end
  end
  [status, { "content-type" => "text/plain", "content-length" => body.bytesize.to_s }, [body]]
}
