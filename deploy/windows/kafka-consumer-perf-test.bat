@echo off
rem Runs Strom's kafka-consumer-perf-test.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\kafka-consumer-perf-test.bat does. Example:
rem   bin\windows\kafka-consumer-perf-test.bat --bootstrap-server localhost:9092 --topic perf --messages 100000
"%~dp0..\kafka-consumer-perf-test.exe" %*
exit /b %ERRORLEVEL%
