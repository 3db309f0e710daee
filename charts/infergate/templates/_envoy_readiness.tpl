{{/*
  Static resources added to the bootstrap in a cluster: a listener on the pod IP that forwards
  /ready and /stats/prometheus (only those) to Envoy's admin on 127.0.0.1.
*/}}
{{- define "infergate.envoyReadiness" -}}
listeners:
  - name: infergate-readiness
    address:
      socket_address:
        address: 0.0.0.0
        port_value: {{ .port }}
    filter_chains:
      - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: infergate_readiness
              route_config:
                name: infergate-readiness
                virtual_hosts:
                  - name: admin
                    domains: ["*"]
                    routes:
                      - match:
                          path: /ready
                        route:
                          cluster: infergate_admin
                      - match:
                          path: /stats/prometheus
                        route:
                          cluster: infergate_admin
              http_filters:
                - name: envoy.filters.http.router
                  typed_config:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
clusters:
  - name: infergate_admin
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: infergate_admin
      endpoints:
        - lb_endpoints:
            - endpoint:
                address:
                  socket_address:
                    address: 127.0.0.1
                    port_value: {{ .adminPort }}
{{- end -}}
