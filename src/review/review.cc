#include "review/review.h"

#include <v8.h>

#include <chrono>
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>

#include "base/fs.h"
#include "js/engine.h"
#include "js/wrangler.h"
#include "review/sources.h"  // generated: acorn and reviewer.js

namespace dobj::review {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// The heap of a review's isolate.
constexpr size_t kHeapBytes = size_t{512} << 20;

// A folder walk stops past this many entries (a path such as / by mistake).
constexpr size_t kMaxFolderEntries = 100'000;

bool is_module(const fs::path& p) {
  auto ext = p.extension().string();
  return ext == ".js" || ext == ".mjs" || ext == ".cjs";
}

bool is_config(const fs::path& p) {
  auto name = p.filename().string();
  return name == "wrangler.jsonc" || name == "wrangler.json" || name == "wrangler.toml";
}

Status add_file(Input& input, const fs::path& p, size_t& total) {
  auto text = internal::read_file(p.string());
  if (!text) return text.status();
  total += text->size();
  if (total > kMaxSourceBytes) {
    return Status(Code::kTooLarge, "more than " + std::to_string(kMaxSourceBytes >> 20) +
                                       " MiB of source to review");
  }
  input.files.push_back(Source{p.string(), std::move(*text)});
  return Status::ok();
}

// Every module under dir, in a stable order, node_modules and dot folders skipped.
Status add_folder(Input& input, const fs::path& dir, size_t& total) {
  std::vector<fs::path> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return Status(Code::kNotFound, dir.string() + ": " + ec.message());
  size_t visited = 0;
  for (auto end = fs::recursive_directory_iterator(); it != end; it.increment(ec)) {
    if (ec) return Status(Code::kInternal, dir.string() + ": " + ec.message());
    if (++visited > kMaxFolderEntries) {
      return Status(Code::kTooLarge, dir.string() + ": more than " + std::to_string(kMaxFolderEntries) +
                                         " entries; give the Worker's own folder");
    }
    auto name = it->path().filename().string();
    if (it->is_directory() && (name == "node_modules" || (!name.empty() && name[0] == '.'))) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && is_module(it->path())) found.push_back(it->path());
  }
  std::sort(found.begin(), found.end());
  for (auto& p : found) {
    if (Status s = add_file(input, p, total); !s) return s;
  }
  return Status::ok();
}

size_t source_bytes(const Input& input) {
  size_t n = input.config ? input.config->text.size() : 0;
  for (auto& f : input.files) n += f.text.size();
  return n;
}

// V8 strings and values.
v8::Local<v8::String> str(v8::Isolate* isolate, std::string_view s) {
  return v8::String::NewFromUtf8(isolate, s.data(), v8::NewStringType::kNormal,
                                 static_cast<int>(s.size()))
      .ToLocalChecked();
}

}  // namespace

Status collect_into(Input& input, const std::string& path) {
  fs::path p(path);
  std::error_code ec;
  size_t total = source_bytes(input);
  if (fs::is_directory(p, ec)) {
    for (const char* name : {"wrangler.jsonc", "wrangler.json", "wrangler.toml"}) {
      if (!input.config && fs::exists(p / name)) return collect_into(input, (p / name).string());
    }
    return add_folder(input, p, total);
  }
  if (!fs::exists(p, ec)) return Status(Code::kNotFound, path + ": no such file or folder");
  if (is_config(p)) {
    auto text = internal::read_file(p.string());
    if (!text) return text.status();
    input.config = Source{p.string(), std::move(*text)};
    // The modules: the folder of main (its imports live there).
    auto parsed = js::parse_wrangler(p.string(), input.config->text);
    if (!parsed) return parsed.status();
    std::string main = parsed->value("main", "");
    if (main.empty()) return Status(Code::kInvalidArgument, path + ": no \"main\" module");
    fs::path main_path = p.parent_path() / main;
    if (main_path.extension() == ".ts" || main_path.extension() == ".tsx" || main_path.extension() == ".mts") {
      return Status(Code::kInvalidArgument,
                    path + ": main is TypeScript (" + main + "); review its compiled JavaScript "
                           "(wrangler deploy --dry-run --outdir dist, then dobj review dist)");
    }
    if (!fs::exists(main_path, ec)) {
      return Status(Code::kNotFound, path + ": main module " + main_path.string() + " not found");
    }
    return add_folder(input, main_path.parent_path(), total);
  }
  if (p.extension() == ".ts" || p.extension() == ".tsx" || p.extension() == ".mts") {
    return Status(Code::kInvalidArgument,
                  path + ": TypeScript is reviewed from its compiled JavaScript (wrangler deploy "
                         "--dry-run --outdir dist, or esbuild); review that output");
  }
  return add_file(input, p, total);
}

Result<Input> collect(const std::string& path) {
  Input input;
  if (Status s = collect_into(input, path); !s) return s;
  return input;
}

Result<Input> input_from_json(const Json& request, const std::string& default_config) {
  if (!request.is_object()) return Status(Code::kInvalidArgument, "the request must be a JSON object");
  Input input;
  auto text_of = [&](const char* key) -> const Json* {
    auto it = request.find(key);
    return it != request.end() && it->is_string() ? &*it : nullptr;
  };
  if (const Json* path = text_of("path")) {
    if (Status s = collect_into(input, path->get<std::string>()); !s) return s;
    return input;
  }
  size_t total = 0;
  if (const Json* source = text_of("source")) {
    input.files.push_back(Source{"worker.js", source->get<std::string>()});
    total += input.files.back().text.size();
  }
  if (auto it = request.find("files"); it != request.end()) {
    if (!it->is_object()) return Status(Code::kInvalidArgument, "files must map paths to code");
    for (auto& [path, text] : it->items()) {
      if (!text.is_string()) return Status(Code::kInvalidArgument, "files[" + path + "] must be a string");
      input.files.push_back(Source{path, text.get<std::string>()});
      total += input.files.back().text.size();
    }
  }
  if (input.files.empty()) {
    return Status(Code::kInvalidArgument, "give source, files or path");
  }
  if (const Json* config = text_of("config")) {
    input.config = Source{"wrangler.jsonc", config->get<std::string>()};
  } else if (!default_config.empty()) {
    auto text = internal::read_file(default_config);
    if (text) input.config = Source{default_config, std::move(*text)};
    input.check_config = false;
  }
  if (total > kMaxSourceBytes) return Status(Code::kTooLarge, "too much source to review");
  return input;
}

namespace {

// One isolate per review: compiles acorn and the rules, then calls fn with
// the context; answers what fn returns (a JSON text) or the exception's text.
Result<std::string> in_engine(const std::function<v8::MaybeLocal<v8::Value>(
                                  v8::Isolate*, v8::Local<v8::Context>)>& fn) {
  js::init_v8();
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator(
      v8::ArrayBuffer::Allocator::NewDefaultAllocator());
  v8::Isolate::CreateParams params;
  params.array_buffer_allocator = allocator.get();
  params.constraints.ConfigureDefaultsFromHeapSize(0, kHeapBytes);
  v8::Isolate* isolate = v8::Isolate::New(params);
  // Past the heap limit V8 would abort the process (a server reviewing code
  // through its admin API): the review stops instead.
  std::atomic<bool> out_of_memory{false};
  struct Limit {
    v8::Isolate* isolate;
    std::atomic<bool>* hit;
  } limit{isolate, &out_of_memory};
  isolate->AddNearHeapLimitCallback(
      [](void* data, size_t current, size_t) -> size_t {
        auto* l = static_cast<Limit*>(data);
        if (!l->hit->exchange(true)) l->isolate->TerminateExecution();
        return current + (64u << 20);  // room to unwind
      },
      &limit);
  Result<std::string> out = Status(Code::kInternal, "the reviewer did not run");
  {
    v8::Isolate::Scope isolate_scope(isolate);
    v8::HandleScope handles(isolate);
    v8::Local<v8::Context> ctx = v8::Context::New(isolate);
    v8::Context::Scope context_scope(ctx);
    v8::TryCatch try_catch(isolate);
    auto failed = [&](const std::string& where) -> Status {
      std::string what = "unknown error";
      if (try_catch.HasCaught()) {
        v8::String::Utf8Value m(isolate, try_catch.Exception());
        if (*m) what = *m;
      }
      return Status(Code::kInternal, "reviewer: " + where + ": " + what);
    };
    bool loaded = true;
    for (auto [name, text] : {std::pair{"acorn.js", kAcornSource},
                              std::pair{"reviewer.js", kReviewerSource}}) {
      v8::ScriptOrigin origin(isolate, str(isolate, name));
      v8::Local<v8::Script> script;
      if (!v8::Script::Compile(ctx, str(isolate, text), &origin).ToLocal(&script) ||
          script->Run(ctx).IsEmpty()) {
        out = failed(name);
        loaded = false;
        break;
      }
    }
    if (loaded) {
      v8::Local<v8::Value> result;
      if (!fn(isolate, ctx).ToLocal(&result)) {
        out = failed("review");
      } else {
        v8::String::Utf8Value s(isolate, result);
        out = std::string(*s ? *s : "null");
      }
    }
  }
  isolate->Dispose();
  if (out_of_memory) {
    return Status(Code::kTooLarge, "the review ran out of memory (" + std::to_string(kHeapBytes >> 20) +
                                       " MiB): review fewer files at a time");
  }
  return out;
}

// globalThis[function](JSON.parse(arg)), as JSON text.
v8::MaybeLocal<v8::Value> call_json(v8::Isolate* isolate, v8::Local<v8::Context> ctx,
                                    const char* function, const std::string& arg) {
  v8::Local<v8::Value> f;
  if (!ctx->Global()->Get(ctx, str(isolate, function)).ToLocal(&f) || !f->IsFunction()) return {};
  v8::Local<v8::Value> parsed;
  if (!v8::JSON::Parse(ctx, str(isolate, arg)).ToLocal(&parsed)) return {};
  v8::Local<v8::Value> r;
  if (!f.As<v8::Function>()->Call(ctx, ctx->Global(), 1, &parsed).ToLocal(&r)) return {};
  v8::Local<v8::String> text;
  if (!v8::JSON::Stringify(ctx, r).ToLocal(&text)) return {};
  return text;
}

}  // namespace

Result<Json> run(const Input& input) {
  if (source_bytes(input) > kMaxSourceBytes) {
    return Status(Code::kTooLarge, "more than " + std::to_string(kMaxSourceBytes >> 20) +
                                       " MiB of source to review");
  }
  auto start = std::chrono::steady_clock::now();
  Json arg = {{"files", Json::array()}, {"live", input.live}};
  for (auto& f : input.files) arg["files"].push_back({{"path", f.path}, {"text", f.text}});
  if (input.config) {
    auto config = js::parse_wrangler(input.config->path, input.config->text);
    if (!config) return config.status();
    arg["config"] = std::move(*config);
    arg["configPath"] = input.config->path;
    arg["configText"] = input.config->text;
    arg["checkConfig"] = input.check_config;
  }
  std::string text = arg.dump(-1, ' ', false, Json::error_handler_t::replace);
  auto answer = in_engine([&](v8::Isolate* isolate, v8::Local<v8::Context> ctx) {
    return call_json(isolate, ctx, "review", text);
  });
  if (!answer) return answer.status();
  Json out = Json::parse(*answer, nullptr, false);
  if (out.is_discarded() || !out.is_object()) return Status(Code::kInternal, "reviewer: bad answer");
  out["files"] = input.files.size();
  out["ms"] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

Json rules() {
  auto answer = in_engine([&](v8::Isolate* isolate, v8::Local<v8::Context> ctx) {
    return call_json(isolate, ctx, "reviewRules", "null");
  });
  if (!answer) return Json::array();
  return Json::parse(*answer, nullptr, false);
}

std::string to_text(const Json& result) {
  std::string out;
  size_t errors = 0, warnings = 0, infos = 0;
  for (const Json& f : result.value("findings", Json::array())) {
    std::string severity = f.value("severity", "");
    (severity == "error" ? errors : severity == "warning" ? warnings : infos)++;
    out += f.value("file", "") + ":" + std::to_string(f.value("line", 0)) + ":" +
           std::to_string(f.value("column", 0)) + ": " + severity + " " + f.value("rule", "") +
           ": " + f.value("message", "") + "\n";
    out += "    why: " + f.value("why", "") + "\n";
    out += "    fix: " + f.value("fix", "") + "\n";
    if (f.contains("replay")) {
      const Json& r = f["replay"];
      if (r.contains("note")) {
        out += "    replay: " + r.value("note", "") + "\n";
      } else {
        out += std::string(r.value("confirmed", false) ? "    confirmed by replay" : "    replay did not show it") +
               " (" + r.value("request", "") + " twice): kept in memory " + r.value("inMemory", "") +
               "; evicted between " + r.value("afterEviction", "") + "\n";
      }
    }
    if (f.contains("confirmed")) {
      const Json& c = f["confirmed"];
      out += "    confirmed by the live numbers (" + c.value("by", "") + ", " +
             c.value("namespace", "") + "): " + c.value("evidence", "") + "\n";
    }
  }
  size_t files = result.value("files", 0);
  out += std::to_string(files) + (files == 1 ? " file" : " files") + " reviewed: " + std::to_string(errors) +
         " errors, " + std::to_string(warnings) + " warnings, " + std::to_string(infos) + " notes\n";
  return out;
}

bool has_errors(const Json& result) {
  for (const Json& f : result.value("findings", Json::array())) {
    if (f.value("severity", "") == "error") return true;
  }
  return false;
}

}  // namespace dobj::review
