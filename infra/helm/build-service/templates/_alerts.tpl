{{/*
The service's alert rules: the `groups:` of a Prometheus rule file. The PrometheusRule renders them; the
observability tests render them alone (helm template --show-only) and check them with the real promtool.
docs/operations.md says what each alert means and what to do.
*/}}
{{- define "build-service.alertRules" -}}
{{- $r := .Values.buildService.metrics.prometheusRule -}}
groups:
  - name: image-build-service
    rules:
      - alert: ImageBuildsFailing
        expr: |
          (
            sum(increase(ibs_builds_finished_total{status="failed"}[15m]))
            / clamp_min(sum(increase(ibs_builds_finished_total[15m])), 1)
          ) > {{ $r.failureRatio }}
          and sum(increase(ibs_builds_finished_total{status="failed"}[15m])) >= 3
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: More than {{ mulf $r.failureRatio 100 }}% of image builds failed over the last 15 minutes
          description: 'Failed builds by code: sum by (code) (increase(ibs_builds_finished_total{status="failed"}[15m])). The failed builds'' error.evidence says why (docs/errors.md).'
      - alert: ImageBuildQueueStuck
        expr: max(ibs_builds_oldest_waiting_seconds) > {{ $r.maxQueueWaitSeconds }}
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: A build has been queued for more than {{ $r.maxQueueWaitSeconds }} seconds
          description: 'Queued builds: {{ "{{" }} $value | humanizeDuration {{ "}}" }} for the oldest. Check that workers run (ImageBuildWorkerAbsent) and whether they are all busy (ibs_builds_running against the workers'' slots).'
      - alert: ImageBuildWorkerAbsent
        expr: absent(ibs_temporal_sdk_metrics_up)
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: No image-build worker is reporting
          description: No worker's metrics reached Prometheus for 5 minutes; builds wait until a worker polls again. Check the worker Deployment's pods and their logs.
      - alert: ImageBuildStorageErrors
        expr: sum(rate(ibs_storage_operations_total{outcome="error"}[10m])) > {{ $r.errorRate }}
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: Object-storage operations of the image build service are failing
          description: 'Failing operations: sum by (operation) (rate(ibs_storage_operations_total{outcome="error"}[10m])). Contexts cannot be stored and logs are not uploaded while this lasts; check the bucket, the credentials and the network.'
      - alert: ImageBuildRegistryErrors
        expr: sum(rate(ibs_registry_requests_total{outcome=~"server_error|network_error|unauthorized|forbidden"}[10m])) > {{ $r.errorRate }}
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: Requests of the image build service to container registries are failing
          description: 'By outcome: sum by (outcome) (rate(ibs_registry_requests_total[10m])). unauthorized/forbidden: credentials; server_error/network_error: the registry or the way to it.'
{{- end -}}
