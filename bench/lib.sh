# Shared by the bench scripts (sourced, not run).

# Registers the two deployments the cost benchmarks use on the Hearth at 127.0.0.1:$1, both
# served by the fake upstream at 127.0.0.1:$2: "bench" (Codestral, bound to code completion)
# and "bench-chat" (Mistral, bound to Duo Chat; the catalog does not rate Codestral for chat).
# Needs $TOKEN, the admin token that Hearth was started with.
bench_deployments() {
    local hearth="http://127.0.0.1:$1" up="http://127.0.0.1:$2/v1"
    local -a auth=(-sS --fail-with-body -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')
    curl "${auth[@]}" -X POST "$hearth/api/v1/self_hosted_models" \
        -d "{\"name\":\"bench\",\"family\":\"codestral\",\"endpoint\":\"$up\",\"identifier\":\"custom_openai/codestral\"}"
    curl "${auth[@]}" -X POST "$hearth/api/v1/self_hosted_models" \
        -d "{\"name\":\"bench-chat\",\"family\":\"mistral\",\"endpoint\":\"$up\",\"identifier\":\"custom_openai/mistral\"}"
    curl "${auth[@]}" -X PUT "$hearth/api/v1/feature_settings/code_completions" \
        -d '{"provider":"self_hosted","self_hosted_model_id":1}'
    curl "${auth[@]}" -X PUT "$hearth/api/v1/feature_settings/duo_chat" \
        -d '{"provider":"self_hosted","self_hosted_model_id":2}'
}
