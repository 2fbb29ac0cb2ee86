# Rack app of the puma recipe (test/test_recipes.py): "version=V gen=G pid=P", and the generation
# (HUPWATCH_GENERATION) as the X-Generation header (readiness is puma's own READY=1 now).
version = File.read(File.join(__dir__, "VERSION")).strip
gen = ENV.fetch("HUPWATCH_GENERATION", "?")
run lambda { |_env|
  [200, { "content-type" => "text/plain", "x-generation" => gen },
   ["version=#{version} gen=#{gen} pid=#{Process.pid}\n"]]
}
